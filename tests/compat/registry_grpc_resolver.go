// registry_grpc_resolver.go - the driver of registry_grpc_resolver.test.
//
// Goal: etcd's own gRPC resolver (go.etcd.io/etcd/clientv3/naming/resolver
// as Debian ships it with etcd 3.4, on grpc-go 1.33) balances over instances
// registered through Cairn's REST API, and follows every way an instance
// leaves or comes back. Method: three gRPC backends (grpc's health service)
// on 127.0.0.1; curl registers them under a session kept alive here; a
// client dials etcd:///<prefix> with round_robin and tells the backends
// apart by the peer of each call. Each step polls until two batches of
// calls in a row reach exactly the expected backends, with a deadline.
//
// Usage: registry_grpc_resolver CAIRN_HOST:PORT NAMESPACE SERVICE SCALE
// Prints "ok what" / "FAIL what" lines (the script makes them TAP), other
// lines are diagnostics.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

var (
	ep, ns, svc string
	scale       = 1
)

// tap prints "ok what" or "FAIL what" (the script numbers them), then the
// diagnostics of a failure.
func tap(ok bool, what string, diag ...string) {
	if ok {
		fmt.Printf("ok %s\n", what)
		return
	}
	fmt.Printf("FAIL %s\n", what)
	for _, d := range diag {
		for _, l := range strings.Split(strings.TrimRight(d, "\n"), "\n") {
			fmt.Printf("  %s\n", l)
		}
	}
}

// rest runs one REST call through curl; returns the HTTP status and body.
func rest(method, path, body string) (int, map[string]interface{}, string) {
	args := []string{"-sS", "-m", strconv.Itoa(5 * scale), "-X", method,
		"-w", "\n%{http_code}"}
	if body != "" {
		args = append(args, "-H", "content-type: application/json", "-d", body)
	}
	args = append(args, "http://"+ep+path)
	out, err := exec.Command("curl", args...).Output()
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(s, "\n")
	if err != nil || i < 0 {
		return 0, nil, fmt.Sprintf("curl %s %s: %v: %s", method, path, err, s)
	}
	code, _ := strconv.Atoi(s[i+1:])
	var m map[string]interface{}
	_ = json.Unmarshal([]byte(s[:i]), &m)
	return code, m, s[:i]
}

type backend struct {
	name, addr string
	srv        *grpc.Server
}

func startBackend(name string) *backend {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(l)
	return &backend{name: name, addr: l.Addr().String(), srv: s}
}

// batch makes k calls; returns the backends that answered ("a,c", sorted),
// the calls each got ("a=6 c=6") and the number of failed calls.
func batch(cc *grpc.ClientConn, names map[string]string, k int) (string,
	string, int) {
	hc := healthpb.NewHealthClient(cc)
	seen := map[string]int{}
	failed := 0
	for i := 0; i < k; i++ {
		var p peer.Peer
		ctx, cancel := context.WithTimeout(context.Background(),
			time.Duration(scale)*time.Second)
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
		cancel()
		if err != nil {
			failed++
			continue
		}
		name := names[p.Addr.String()]
		if name == "" {
			name = "?" + p.Addr.String()
		}
		seen[name]++
	}
	var ks []string
	for k := range seen {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, seen[k]))
	}
	return strings.Join(ks, ","), strings.Join(parts, " "), failed
}

// expect polls until two batches in a row reach exactly want ("a,b,c",
// sorted; "" for none, then every call must fail) within secs seconds.
func expect(cc *grpc.ClientConn, names map[string]string, want string,
	secs int, what string) {
	deadline := time.Now().Add(time.Duration(secs*scale) * time.Second)
	good := 0
	last := ""
	for time.Now().Before(deadline) {
		got, counts, failed := batch(cc, names, 12)
		ok := got == want && (want == "" || failed == 0)
		last = fmt.Sprintf("calls: %s, %d failed; want {%s}", counts,
			failed, want)
		if ok {
			good++
			if good == 2 {
				tap(true, what)
				return
			}
		} else {
			good = 0
			time.Sleep(100 * time.Millisecond)
		}
	}
	tap(false, what, last)
}

func register(b *backend, session string, ttl int) (int, string) {
	body := fmt.Sprintf(`{"addr":%q,"session":%q}`, b.addr, session)
	if session == "" {
		body = fmt.Sprintf(`{"addr":%q,"ttl":%d}`, b.addr, ttl)
	}
	code, _, raw := rest("PUT", "/api/v1/registry/"+ns+"/"+svc+"/"+b.name, body)
	return code, raw
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: registry_grpc_resolver EP NS SVC SCALE")
		os.Exit(2)
	}
	ep, ns, svc = os.Args[1], os.Args[2], os.Args[3]
	scale, _ = strconv.Atoi(os.Args[4])
	if scale < 1 {
		scale = 1
	}
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(ioutil.Discard, ioutil.Discard,
		os.Stderr))

	bs := []*backend{startBackend("a"), startBackend("b"), startBackend("c")}
	names := map[string]string{}
	for _, b := range bs {
		names[b.addr] = b.name
		fmt.Printf("backend %s on %s\n", b.name, b.addr)
	}

	// A session, kept alive here every second until the end.
	code, m, raw := rest("POST", "/api/v1/sessions", `{"ttl":10}`)
	session, _ := m["session"].(string)
	tap(code == 200 && session != "", "POST /api/v1/sessions", raw)
	if session == "" {
		return
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rest("POST", "/api/v1/sessions/"+session+"/keepalive", "")
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	ok := true
	var diag []string
	for _, b := range bs {
		c, r := register(b, session, 0)
		if c != 200 {
			ok = false
			diag = append(diag, fmt.Sprintf("%s: %d %s", b.name, c, r))
		}
	}
	tap(ok, "PUT three instances under the session", diag...)

	// A fourth backend in a service whose name extends this one's: the
	// target's trailing slash keeps it out of every answer below.
	x := startBackend("x")
	names[x.addr] = "x"
	defer x.srv.Stop()
	code, _, raw = rest("PUT", "/api/v1/registry/"+ns+"/"+svc+"2/x",
		fmt.Sprintf(`{"addr":%q,"session":%q}`, x.addr, session))
	tap(code == 200, "PUT instance x of service "+svc+"2", raw)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep},
		DialTimeout: time.Duration(5*scale) * time.Second})
	if err != nil {
		tap(false, "clientv3.New", err.Error())
		return
	}
	defer cli.Close()
	rb, _ := resolver.NewBuilder(cli)
	target := "etcd:///" + "/registry/" + ns + "/services/" + svc + "/"
	fmt.Printf("dialing %s\n", target)
	ctx, cancel := context.WithTimeout(context.Background(),
		time.Duration(10*scale)*time.Second)
	cc, err := grpc.DialContext(ctx, target, grpc.WithInsecure(),
		grpc.WithResolvers(rb), grpc.WithBlock(),
		grpc.WithDefaultServiceConfig(
			`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	cancel()
	tap(err == nil, "grpc.Dial(\""+target+"\") with etcd's resolver connects",
		fmt.Sprint(err))
	if err != nil {
		return
	}
	defer cc.Close()

	expect(cc, names, "a,b,c", 10, "round_robin reaches all three instances")

	code, _, raw = rest("DELETE", "/api/v1/registry/"+ns+"/"+svc+"/b", "")
	tap(code == 200, "DELETE instance b", raw)
	expect(cc, names, "a,c", 10, "after DELETE, b gets no calls")

	code, raw = register(bs[1], session, 0)
	tap(code == 200, "PUT instance b again", raw)
	expect(cc, names, "a,b,c", 10, "re-registered b gets calls again")

	// c moves to a lease of its own that nobody keeps alive.
	t0 := time.Now()
	code, raw = register(bs[2], "", 3)
	tap(code == 200, "PUT instance c with its own ttl 3 (not kept alive)", raw)
	expect(cc, names, "a,b,c", 2, "c still gets calls before it expires")
	expect(cc, names, "a,b", 15, "after c's ttl runs out, c gets no calls")
	fmt.Printf("c left the rotation %.1f s after its ttl-3 registration\n",
		time.Since(t0).Seconds())
	code, _, raw = rest("GET", "/api/v1/registry/"+ns+"/"+svc+"/c", "")
	tap(code == 404, "GET the expired instance c answers 404", raw)

	code, raw = register(bs[2], session, 0)
	tap(code == 200, "PUT instance c again under the session", raw)
	expect(cc, names, "a,b,c", 10, "re-registered c gets calls again")

	// Instances outlive the client's keepalive gaps: wait past the
	// session's ttl/3 a few times and check nothing dropped out.
	time.Sleep(time.Duration(3*scale) * time.Second)
	expect(cc, names, "a,b,c", 5, "the kept-alive session keeps all three")

	code, _, raw = rest("DELETE", "/api/v1/sessions/"+session, "")
	tap(code == 200, "DELETE the session", raw)
	expect(cc, names, "", 10, "after the session is revoked, no instance is reachable")

	for _, b := range bs {
		b.srv.Stop()
	}
}
