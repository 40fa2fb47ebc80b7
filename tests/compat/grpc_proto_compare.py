#!/usr/bin/python3
"""grpc_proto_compare.py - helpers for grpc_proto_wire.test.

  strip SRC DST            copy an etcd .proto without gogoproto and
                           google.api options (the wire format is unchanged)
  compare ETCD.pb OURS.pb  compare two FileDescriptorSets (protoc -o
                           --include_imports): every message, field, enum,
                           service and method etcd defines must exist in
                           ours with the same number, name, label, type and
                           type name. Fields only we have (newer etcd
                           releases) are listed. Prints RESULT lines.
"""
import re
import sys

from google.protobuf import descriptor_pb2


def strip(src, dst):
    s = open(src).read()
    s = re.sub(r'^import "(gogoproto/gogo|google/api/annotations)\.proto";\n',
               "", s, flags=re.M)
    s = re.sub(r"^option \(gogoproto\.[a-z_]+\) = [a-z]+;\n", "", s,
               flags=re.M)
    s = re.sub(r"\s*\[\(gogoproto\.[^\]]*\]", "", s)
    # rpc Foo(A) returns (B) { option (google.api.http) = {...}; }  ->  {}
    s = re.sub(r"\{\s*option \(google\.api\.http\) = \{[^{}]*"
               r"(\{[^{}]*\}[^{}]*)*\};\s*\}", "{}", s)
    open(dst, "w").write(s)


def load(path):
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(open(path, "rb").read())
    msgs, enums, svcs = {}, {}, {}

    def walk(prefix, m):
        name = prefix + "." + m.name
        msgs[name] = m
        for e in m.enum_type:
            enums[name + "." + e.name] = e
        for n in m.nested_type:
            walk(name, n)

    for f in fds.file:
        pkg = "." + f.package if f.package else ""
        for m in f.message_type:
            walk(pkg, m)
        for e in f.enum_type:
            enums[pkg + "." + e.name] = e
        for s in f.service:
            svcs[pkg + "." + s.name] = s
    return msgs, enums, svcs


def field_sig(m, f):
    oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") \
        else ""
    return (f.number, f.name, f.label, f.type, f.type_name, oneof)


def compare(etcd_path, ours_path):
    em, ee, es = load(etcd_path)
    om, oe, os_ = load(ours_path)
    problems, extras = [], []
    for name, m in em.items():
        if name not in om:
            problems.append("missing message %s" % name)
            continue
        ours = {f.number: field_sig(om[name], f) for f in om[name].field}
        for f in m.field:
            want = field_sig(m, f)
            got = ours.pop(f.number, None)
            if got != want:
                problems.append("%s field %d: etcd %r ours %r" %
                                (name, f.number, want, got))
        extras += ["%s.%s=%d" % (name, sig[1], n) for n, sig in ours.items()]
    for name, e in ee.items():
        ov = {v.number: v.name for v in oe.get(name, e).value} \
            if name in oe else None
        if ov is None:
            problems.append("missing enum %s" % name)
            continue
        for v in e.value:
            if ov.get(v.number) != v.name:
                problems.append("enum %s %d: etcd %s ours %s" %
                                (name, v.number, v.name, ov.get(v.number)))
    for name, s in es.items():
        if name not in os_:
            problems.append("missing service %s" % name)
            continue
        ours = {mm.name: mm for mm in os_[name].method}
        for mm in s.method:
            o = ours.get(mm.name)
            sig = lambda x: (x.input_type, x.output_type, x.client_streaming,
                             x.server_streaming)
            if o is None or sig(o) != sig(mm):
                problems.append("%s/%s differs" % (name, mm.name))
    nfields = sum(len(m.field) for m in em.values())
    print("RESULT %s descriptors: %d messages, %d fields, %d enums, "
          "%d services of etcd match ours%s" %
          ("ok" if not problems else "fail", len(em), nfields, len(ee),
           len(es), "" if not problems else ": " + "; ".join(problems[:8])))
    print("# fields only in ours (newer etcd): " + ", ".join(sorted(extras)))
    return 0 if not problems else 1


if __name__ == "__main__":
    if sys.argv[1] == "strip":
        strip(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(compare(sys.argv[2], sys.argv[3]))
