/*
 * cairnctl_main.c - cairnctl's entry: the command table, flag parsing in
 * pflag's manner (flags anywhere, --flag=v or --flag v, -w json, "--"),
 * ETCDCTL_* environment variables for the global flags (a variable and
 * the same flag on the command line is etcdctl's fatal conflict), --help
 * on every command, and the shared client.
 *
 * TLS as etcdctl 3.4 decides it (ctlv3/command/global.go): any of
 * --cacert, --cert, --key makes a TLS config, which bare host:port
 * endpoints then use; --insecure-transport=false makes one too (system
 * CAs); https:// endpoints always speak TLS and http:// never.
 * --insecure-skip-tls-verify only acts when there is a TLS config, so
 * with an https:// endpoint and no other TLS flag it changes nothing
 * (etcdctl verifies against the system store then, and so do we).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdk/cairnctl/cairnctl.h"

#define B true /* a bool flag */
#define V false

static const struct ctl_opt global_opts[] = {
    {"cacert", 0, V, "",
     "verify certificates of TLS-enabled secure servers "
     "using this CA bundle",
     NULL},
    {"cert", 0, V, "",
     "identify secure client using this TLS certificate "
     "file",
     NULL},
    {"command-timeout", 0, V, "5s",
     "timeout for short running command "
     "(excluding dial timeout)",
     NULL},
    {"debug", 0, B, "false", "enable client-side debug logging", NULL},
    {"dial-timeout", 0, V, "2s", "dial timeout for client connections", NULL},
    {"discovery-srv", 'd', V, "",
     "domain name to query for SRV records "
     "describing cluster endpoints",
     NULL},
    {"discovery-srv-name", 0, V, "",
     "service name to query when using DNS "
     "discovery",
     NULL},
    {"endpoints", 0, V, "[127.0.0.1:2379]", "gRPC endpoints", NULL},
    {"hex", 0, B, "false", "print byte strings as hex encoded strings", NULL},
    {"insecure-discovery", 0, B, "true",
     "accept insecure SRV records "
     "describing cluster endpoints",
     NULL},
    {"insecure-skip-tls-verify", 0, B, "false",
     "skip server certificate "
     "verification",
     NULL},
    {"insecure-transport", 0, B, "true",
     "disable transport security for "
     "client connections",
     NULL},
    {"keepalive-time", 0, V, "2s", "keepalive time for client connections",
     NULL},
    {"keepalive-timeout", 0, V, "6s",
     "keepalive timeout for client "
     "connections",
     NULL},
    {"key", 0, V, "", "identify secure client using this TLS key file", NULL},
    {"password", 0, V, "",
     "password for authentication (if this option is "
     "used, --user option shouldn't include password)",
     NULL},
    {"user", 0, V, "", "username[:password] for authentication", NULL},
    {"write-out", 'w', V, "simple",
     "set the output format (fields, json, "
     "protobuf, simple, table)",
     NULL},
};
#define GLOBAL_COUNT (sizeof(global_opts) / sizeof(global_opts[0]))

static const struct ctl_opt get_opts[] = {
    {"consistency", 0, V, "l", "Linearizable(l) or Serializable(s)", NULL},
    {"count-only", 0, B, "false", "Get only the count", NULL},
    {"from-key", 0, B, "false",
     "Get keys that are greater than or equal to "
     "the given key using byte compare",
     NULL},
    {"keys-only", 0, B, "false", "Get only the keys", NULL},
    {"limit", 0, V, "0", "Maximum number of results", NULL},
    {"order", 0, V, "",
     "Order of results; ASCEND or DESCEND (ASCEND by "
     "default)",
     NULL},
    {"prefix", 0, B, "false", "Get keys with matching prefix", NULL},
    {"print-value-only", 0, B, "false",
     "Only write values when using the "
     "\"simple\" output format",
     NULL},
    {"rev", 0, V, "0", "Specify the kv revision", NULL},
    {"sort-by", 0, V, "",
     "Sort target; CREATE, KEY, MODIFY, VALUE, or "
     "VERSION",
     NULL},
};
static const struct ctl_opt put_opts[] = {
    {"ignore-lease", 0, B, "false", "updates the key using its current lease",
     NULL},
    {"ignore-value", 0, B, "false", "updates the key using its current value",
     NULL},
    {"lease", 0, V, "0", "lease ID (in hexadecimal) to attach to the key",
     NULL},
    {"prev-kv", 0, B, "false",
     "return the previous key-value pair before "
     "modification",
     NULL},
};
static const struct ctl_opt del_opts[] = {
    {"from-key", 0, B, "false",
     "delete keys that are greater than or equal "
     "to the given key using byte compare",
     NULL},
    {"prefix", 0, B, "false", "delete keys with matching prefix", NULL},
    {"prev-kv", 0, B, "false", "return deleted key-value pairs", NULL},
};
static const struct ctl_opt txn_opts[] = {
    {"interactive", 'i', B, "false", "Input transaction in interactive mode",
     NULL},
};
static const struct ctl_opt watch_opts[] = {
    {"interactive", 'i', B, "false", "Interactive mode", NULL},
    {"prefix", 0, B, "false", "Watch on a prefix if prefix is set", NULL},
    {"prev-kv", 0, B, "false",
     "get the previous key-value pair before the "
     "event happens",
     NULL},
    {"rev", 0, V, "0", "Revision to start watching", NULL},
};
static const struct ctl_opt ttl_opts[] = {
    {"keys", 0, B, "false", "Get keys attached to this lease", NULL},
};
static const struct ctl_opt keepalive_opts[] = {
    {"once", 0, B, "false",
     "Resets the keep-alive time to its original "
     "value and exits immediately",
     NULL},
};
static const struct ctl_opt cluster_opts[] = {
    {"cluster", 0, B, "false",
     "use all endpoints from the cluster member "
     "list",
     NULL},
};

static const struct ctl_opt compaction_opts[] = {
    {"physical", 0, B, "false",
     "'true' to wait for compaction to physically remove all old revisions",
     NULL},
};
static const struct ctl_opt defrag_opts[] = {
    {"cluster", 0, B, "false",
     "use all endpoints from the cluster member "
     "list",
     NULL},
    {"data-dir", 0, V, "",
     "Optional. If present, defragments a data directory not in use by "
     "etcd.",
     NULL},
};
static const struct ctl_opt hashkv_opts[] = {
    {"cluster", 0, B, "false",
     "use all endpoints from the cluster member "
     "list",
     NULL},
    {"rev", 0, V, "0", "maximum revision to hash (default: all revisions)",
     NULL},
};
static const struct ctl_opt snapshot_restore_opts[] = {
    {"data-dir", 0, V, "", "Path to the data directory", NULL},
    {"initial-advertise-peer-urls", 0, V, "http://localhost:2380",
     "List of this member's peer URLs to advertise to the rest of the "
     "cluster",
     NULL},
    {"initial-cluster", 0, V, "default=http://localhost:2380",
     "Initial cluster configuration for restore bootstrap", NULL},
    {"initial-cluster-token", 0, V, "etcd-cluster",
     "Initial cluster token for the etcd cluster during restore bootstrap",
     NULL},
    {"name", 0, V, "default", "Human-readable name for this member", NULL},
    {"skip-hash-check", 0, B, "false",
     "Ignore snapshot integrity hash value (required if copied from data "
     "directory)",
     NULL},
    {"wal-dir", 0, V, "",
     "Path to the WAL directory (use --data-dir if none given)", NULL},
};
static const struct ctl_opt member_add_opts[] = {
    {"learner", 0, B, "false", "indicates if the new member is raft learner",
     NULL},
    {"peer-urls", 0, V, "", "comma separated peer URLs for the new member.",
     NULL},
};
static const struct ctl_opt member_update_opts[] = {
    {"peer-urls", 0, V, "",
     "comma separated peer URLs for the updated "
     "member.",
     NULL},
};
static const struct ctl_opt user_add_opts[] = {
    {"interactive", 0, B, "true",
     "Read password from stdin instead of "
     "interactive terminal",
     NULL},
    {"new-user-password", 0, V, "",
     "Supply password from the command line "
     "flag",
     NULL},
    {"no-password", 0, B, "false",
     "Create a user without password (CN based "
     "auth only)",
     NULL},
};
static const struct ctl_opt user_get_opts[] = {
    {"detail", 0, B, "false", "Show permissions of roles granted to the user",
     NULL},
};
static const struct ctl_opt user_passwd_opts[] = {
    {"interactive", 0, B, "true",
     "If true, read password from stdin instead "
     "of interactive terminal",
     NULL},
};
static const struct ctl_opt grant_perm_opts[] = {
    {"from-key", 0, B, "false",
     "grant a permission of keys that are greater than or equal to the "
     "given key using byte compare",
     NULL},
    {"prefix", 0, B, "false", "grant a prefix permission", NULL},
};
static const struct ctl_opt revoke_perm_opts[] = {
    {"from-key", 0, B, "false",
     "revoke a permission of keys that are greater than or equal to the "
     "given key using byte compare",
     NULL},
    {"prefix", 0, B, "false", "revoke a prefix permission", NULL},
};

static const struct ctl_opt lock_opts[] = {
    {"ttl", 0, V, "10", "timeout for session", NULL},
};
static const struct ctl_opt elect_opts[] = {
    {"listen", 'l', B, "false", "observation mode", NULL},
};

static const struct ctl_opt svc_register_opts[] = {
    {"addr", 0, V, "", "the instance's host:port (required)", NULL},
    {"keepalive", 0, B, "false",
     "stay in the foreground keeping a session alive (re-registering after "
     "an expiry); Ctrl-C deregisters",
     NULL},
    {"labels", 0, V, "", "labels k=v[,k=v...]", NULL},
    {"ttl", 0, V, "30",
     "session TTL in seconds (without --keepalive the instance gets a "
     "session of its own that nobody renews)",
     NULL},
    {"version", 0, V, "", "the instance's version string", NULL},
    {"weight", 0, V, "-1", "weight 0-1000 (default: the server's, 100)", NULL},
    {"zone", 0, V, "", "the instance's zone", NULL},
};
static const struct ctl_opt svc_list_opts[] = {
    {"healthy", 0, B, "false", "only instances up and passing", NULL},
    {"selector", 0, V, "", "label selector k=v,k2!=v2", NULL},
    {"zone", 0, V, "", "only this zone", NULL},
};
static const struct ctl_opt svc_drain_opts[] = {
    {"undo", 0, B, "false", "set the instance up again", NULL},
};
static const struct ctl_opt cfg_publish_opts[] = {
    {"expect-version", 0, V, "",
     "publish only if the current version is this (0: only if new)", NULL},
    {"format", 0, V, "text", "yaml, json, properties or text", NULL},
    {"message", 0, V, "", "the release's message", NULL},
};
static const struct ctl_opt cfg_get_opts[] = {
    {"cache-dir", 0, V, "",
     "local cache directory: written on success, served (stale) when no "
     "server can be reached",
     NULL},
    {"client-id", 0, V, "", "client id (gray release by percentage)", NULL},
    {"labels", 0, V, "", "client labels k=v[,k=v...] (gray rules)", NULL},
    {"version", 0, V, "0", "a release of the history instead", NULL},
};
static const struct ctl_opt cfg_rollback_opts[] = {
    {"message", 0, V, "", "the new release's message", NULL},
};
static const struct ctl_opt cfg_watch_opts[] = {
    {"cache-dir", 0, V, "", "local cache directory (see config get)", NULL},
    {"client-id", 0, V, "", "client id (gray release by percentage)", NULL},
    {"labels", 0, V, "", "client labels k=v[,k=v...] (gray rules)", NULL},
};
static const struct ctl_opt cfg_gray_put_opts[] = {
    {"format", 0, V, "text", "yaml, json, properties or text", NULL},
    {"labels", 0, V, "",
     "rule: clients whose labels include every k=v[,k=v...]", NULL},
    {"message", 0, V, "", "the gray release's message", NULL},
    {"percentage", 0, V, "",
     "rule: this share of client ids (0-100, two decimals at most)", NULL},
};
static const struct ctl_opt check_perf_opts[] = {
    {"auto-compact", 0, B, "false",
     "Compact storage with last revision after test is finished.", NULL},
    {"auto-defrag", 0, B, "false", "Defragment storage after test is finished.",
     NULL},
    {"duration", 0, V, "60",
     "seconds the check runs (cairnctl's; etcdctl's is always 60)", NULL},
    {"load", 0, V, "s",
     "The performance check's workload model. Accepted workloads: "
     "s(small), m(medium), l(large), xl(xLarge)",
     NULL},
    {"prefix", 0, V, "/etcdctl-check-perf/",
     "The prefix for writing the performance check's keys.", NULL},
};
static const struct ctl_opt check_datascale_opts[] = {
    {"auto-compact", 0, B, "false",
     "Compact storage with last revision after test is finished.", NULL},
    {"auto-defrag", 0, B, "false", "Defragment storage after test is finished.",
     NULL},
    {"load", 0, V, "s",
     "The datascale check's workload model. Accepted workloads: "
     "s(small), m(medium), l(large), xl(xLarge)",
     NULL},
    {"prefix", 0, V, "/etcdctl-check-datascale/",
     "The prefix for writing the datascale check's keys.", NULL},
};
static const struct ctl_opt audit_opts[] = {
    {"action", 0, V, "", "only this action's records (config.publish, ...)",
     NULL},
    {"limit", 0, V, "0", "records per answer, 1-1000 (0: the server's, 100)",
     NULL},
    {"namespace", 0, V, "", "only this namespace's records", NULL},
    {"principal", 0, V, "", "only this user's records", NULL},
    {"since", 0, V, "0",
     "records of writes after this revision, oldest first (0: the newest)",
     NULL},
};

#define OPTS(a) a, sizeof(a) / sizeof(a[0])

static const struct ctl_cmd cmds[] = {
    {"get", "etcdctl get [options] <key> [range_end] [flags]",
     "Gets the key or a range of keys", NULL, OPTS(get_opts), cmd_get},
    {"put",
     "etcdctl put [options] <key> <value> (<value> can also be given from "
     "stdin) [flags]",
     "Puts the given key into the store",
     "Puts the given key into the store.\n\n"
     "When <value> begins with '-', <value> is interpreted as a flag.\n"
     "Insert '--' for workaround:\n\n$ put <key> -- <value>\n"
     "$ put -- <key> <value>\n\n"
     "If <value> isn't given as a command line argument and "
     "'--ignore-value' is not specified,\nthis command tries to read the "
     "value from standard input.",
     OPTS(put_opts), cmd_put},
    {"del", "etcdctl del [options] <key> [range_end] [flags]",
     "Removes the specified key or range of keys [key, range_end)", NULL,
     OPTS(del_opts), cmd_del},
    {"txn", "etcdctl txn [options] [flags]",
     "Txn processes all the requests in one transaction", NULL, OPTS(txn_opts),
     cmd_txn},
    {"watch",
     "etcdctl watch [options] [key or prefix] [range_end] [--] "
     "[exec-command arg1 arg2 ...] [flags]",
     "Watches events stream on keys or prefixes", NULL, OPTS(watch_opts),
     cmd_watch},
    {"lease grant", "etcdctl lease grant <ttl> [flags]", "Creates leases", NULL,
     NULL, 0, cmd_lease_grant},
    {"lease revoke", "etcdctl lease revoke <leaseID> [flags]", "Revokes leases",
     NULL, NULL, 0, cmd_lease_revoke},
    {"lease timetolive", "etcdctl lease timetolive <leaseID> [options] [flags]",
     "Get lease information", NULL, OPTS(ttl_opts), cmd_lease_timetolive},
    {"lease list", "etcdctl lease list [flags]", "List all active leases", NULL,
     NULL, 0, cmd_lease_list},
    {"lease keep-alive", "etcdctl lease keep-alive [options] <leaseID> [flags]",
     "Keeps leases alive (renew)", NULL, OPTS(keepalive_opts),
     cmd_lease_keepalive},
    {"member list", "etcdctl member list [flags]",
     "Lists all members in the cluster", NULL, NULL, 0, cmd_member_list},
    {"endpoint health", "etcdctl endpoint health [flags]",
     "Checks the healthiness of endpoints specified in `--endpoints` flag",
     NULL, OPTS(cluster_opts), cmd_endpoint_health},
    {"endpoint status", "etcdctl endpoint status [flags]",
     "Prints out the status of endpoints specified in `--endpoints` flag", NULL,
     OPTS(cluster_opts), cmd_endpoint_status},
    {"endpoint hashkv", "etcdctl endpoint hashkv [flags]",
     "Prints the KV history hash for each endpoint in --endpoints", NULL,
     OPTS(hashkv_opts), cmd_endpoint_hashkv},
    {"compaction", "etcdctl compaction [options] <revision> [flags]",
     "Compacts the event history in etcd", NULL, OPTS(compaction_opts),
     cmd_compaction},
    {"alarm list", "etcdctl alarm list [flags]", "Lists all alarms", NULL, NULL,
     0, cmd_alarm_list},
    {"alarm disarm", "etcdctl alarm disarm [flags]", "Disarms all alarms", NULL,
     NULL, 0, cmd_alarm_disarm},
    {"defrag", "etcdctl defrag [flags]",
     "Defragments the storage of the etcd members with given endpoints", NULL,
     OPTS(defrag_opts), cmd_defrag},
    {"move-leader", "etcdctl move-leader <transferee-member-id> [flags]",
     "Transfers leadership to another etcd cluster member.", NULL, NULL, 0,
     cmd_move_leader},
    {"member add", "etcdctl member add <memberName> [options] [flags]",
     "Adds a member into the cluster", NULL, OPTS(member_add_opts),
     cmd_member_add},
    {"member remove", "etcdctl member remove <memberID> [flags]",
     "Removes a member from the cluster", NULL, NULL, 0, cmd_member_remove},
    {"member update", "etcdctl member update <memberID> [options] [flags]",
     "Updates a member in the cluster", NULL, OPTS(member_update_opts),
     cmd_member_update},
    {"member promote", "etcdctl member promote <memberID> [flags]",
     "Promotes a non-voting member in the cluster", NULL, NULL, 0,
     cmd_member_promote},
    {"snapshot save", "etcdctl snapshot save <filename> [flags]",
     "Stores an etcd node backend snapshot to a given file", NULL, NULL, 0,
     cmd_snapshot_save},
    {"snapshot status", "etcdctl snapshot status <filename> [flags]",
     "Gets backend snapshot status of a given file",
     "When --write-out is set to simple, this command prints out "
     "comma-separated status lists for each endpoint.\nThe items in the "
     "lists are hash, revision, total keys, total size.",
     NULL, 0, cmd_snapshot_status},
    {"snapshot restore",
     "etcdctl snapshot restore <filename> [options] [flags]",
     "Restores an etcd member snapshot to an etcd directory", NULL,
     OPTS(snapshot_restore_opts), cmd_snapshot_restore},
    {"lock", "etcdctl lock <lockname> [exec-command arg1 arg2 ...] [flags]",
     "Acquires a named lock", NULL, OPTS(lock_opts), cmd_lock},
    {"elect", "etcdctl elect <election-name> [proposal] [flags]",
     "Observes and participates in leader election", NULL, OPTS(elect_opts),
     cmd_elect},
    {"auth enable", "etcdctl auth enable [flags]", "Enables authentication",
     NULL, NULL, 0, cmd_auth_enable},
    {"auth disable", "etcdctl auth disable [flags]", "Disables authentication",
     NULL, NULL, 0, cmd_auth_disable},
    {"auth status", "etcdctl auth status [flags]",
     "Returns authentication status (etcdctl 3.5's)", NULL, NULL, 0,
     cmd_auth_status},
    {"user add",
     "etcdctl user add <user name or user:password> [options] [flags]",
     "Adds a new user", NULL, OPTS(user_add_opts), cmd_user_add},
    {"user delete", "etcdctl user delete <user name> [flags]", "Deletes a user",
     NULL, NULL, 0, cmd_user_delete},
    {"user get", "etcdctl user get <user name> [options] [flags]",
     "Gets detailed information of a user", NULL, OPTS(user_get_opts),
     cmd_user_get},
    {"user list", "etcdctl user list [flags]", "Lists all users", NULL, NULL, 0,
     cmd_user_list},
    {"user passwd", "etcdctl user passwd <user name> [options] [flags]",
     "Changes password of user", NULL, OPTS(user_passwd_opts), cmd_user_passwd},
    {"user grant-role",
     "etcdctl user grant-role <user name> <role name> "
     "[flags]",
     "Grants a role to a user", NULL, NULL, 0, cmd_user_grant_role},
    {"user revoke-role",
     "etcdctl user revoke-role <user name> <role name> "
     "[flags]",
     "Revokes a role from a user", NULL, NULL, 0, cmd_user_revoke_role},
    {"role add", "etcdctl role add <role name> [flags]", "Adds a new role",
     NULL, NULL, 0, cmd_role_add},
    {"role delete", "etcdctl role delete <role name> [flags]", "Deletes a role",
     NULL, NULL, 0, cmd_role_delete},
    {"role get", "etcdctl role get <role name> [flags]",
     "Gets detailed information of a role", NULL, NULL, 0, cmd_role_get},
    {"role list", "etcdctl role list [flags]", "Lists all roles", NULL, NULL, 0,
     cmd_role_list},
    {"role grant-permission",
     "etcdctl role grant-permission [options] <role name> <permission type> "
     "<key> [endkey] [flags]",
     "Grants a key to a role", NULL, OPTS(grant_perm_opts),
     cmd_role_grant_permission},
    {"role revoke-permission",
     "etcdctl role revoke-permission <role name> <key> [endkey] [flags]",
     "Revokes a key from a role", NULL, OPTS(revoke_perm_opts),
     cmd_role_revoke_permission},
    {"version", "etcdctl version [flags]", "Prints the version of etcdctl",
     NULL, NULL, 0, cmd_version},
    {"service register",
     "cairnctl service register <namespace> <service> <id> --addr host:port "
     "[flags]",
     "Registers an instance in Cairn's registry", NULL, OPTS(svc_register_opts),
     cmd_service_register},
    {"service deregister",
     "cairnctl service deregister <namespace> <service> <id> [flags]",
     "Deregisters an instance", NULL, NULL, 0, cmd_service_deregister},
    {"service list", "cairnctl service list [namespace [service]] [flags]",
     "Lists namespaces, the services of a namespace, or a service's "
     "instances",
     NULL, OPTS(svc_list_opts), cmd_service_list},
    {"service get", "cairnctl service get <namespace> <service> <id> [flags]",
     "Shows one instance", NULL, NULL, 0, cmd_service_get},
    {"service watch", "cairnctl service watch <namespace> [service] [flags]",
     "Follows a service's (or namespace's) instances as they change "
     "(pushed; Ctrl-C ends)",
     NULL, NULL, 0, cmd_service_watch},
    {"service drain",
     "cairnctl service drain <namespace> <service> <id> "
     "[flags]",
     "Marks an instance draining (--undo: up again)", NULL,
     OPTS(svc_drain_opts), cmd_service_drain},
    {"config publish",
     "cairnctl config publish <namespace> <app> <name> [file] [flags]",
     "Publishes a new release (content from file, or stdin)", NULL,
     OPTS(cfg_publish_opts), cmd_config_publish},
    {"config get", "cairnctl config get <namespace> <app> <name> [flags]",
     "Prints the release this client should run", NULL, OPTS(cfg_get_opts),
     cmd_config_get},
    {"config list", "cairnctl config list <namespace> [app] [flags]",
     "Lists a namespace's apps, or an app's configs", NULL, NULL, 0,
     cmd_config_list},
    {"config history",
     "cairnctl config history <namespace> <app> <name> "
     "[flags]",
     "Lists a config's releases", NULL, NULL, 0, cmd_config_history},
    {"config diff",
     "cairnctl config diff <namespace> <app> <name> <from> <to> [flags]",
     "Prints diff -u between two releases", NULL, NULL, 0, cmd_config_diff},
    {"config rollback",
     "cairnctl config rollback <namespace> <app> <name> <to-version> [flags]",
     "Publishes an earlier release's content as a new release", NULL,
     OPTS(cfg_rollback_opts), cmd_config_rollback},
    {"config watch", "cairnctl config watch <namespace> <app> <name> [flags]",
     "Prints each new release as it is pushed, acknowledging it (Ctrl-C "
     "ends)",
     NULL, OPTS(cfg_watch_opts), cmd_config_watch},
    {"config subscribers",
     "cairnctl config subscribers <namespace> <app> <name> [flags]",
     "Lists this member's subscribers of a config and what they acked", NULL,
     NULL, 0, cmd_config_subscribers},
    {"config gray put",
     "cairnctl config gray put <namespace> <app> <name> [file] "
     "(--labels k=v,.. | --percentage P) [flags]",
     "Opens (or replaces) a config's gray release for the clients of a rule "
     "(content from file, or stdin)",
     NULL, OPTS(cfg_gray_put_opts), cmd_config_gray_put},
    {"config gray get",
     "cairnctl config gray get <namespace> <app> <name> [flags]",
     "Shows a config's open gray release: rule and content", NULL, NULL, 0,
     cmd_config_gray_get},
    {"config gray promote",
     "cairnctl config gray promote <namespace> <app> <name> [flags]",
     "Makes the gray release the main release under its version", NULL, NULL, 0,
     cmd_config_gray_promote},
    {"config gray abandon",
     "cairnctl config gray abandon <namespace> <app> <name> [flags]",
     "Abandons the gray release (its version is not reused)", NULL, NULL, 0,
     cmd_config_gray_abandon},
    {"audit", "cairnctl audit [list] [flags]",
     "Lists the audit records of registry and config writes", NULL,
     OPTS(audit_opts), cmd_audit_list},
    {"audit list", "cairnctl audit list [flags]",
     "Lists the audit records of registry and config writes", NULL,
     OPTS(audit_opts), cmd_audit_list},
    {"audit verify", "cairnctl audit verify [flags]",
     "Checks the audit log's hash chain (exit 1 when broken)", NULL, NULL, 0,
     cmd_audit_verify},
    {"check perf", "etcdctl check perf [options] [flags]",
     "Check the performance of the etcd cluster", NULL, OPTS(check_perf_opts),
     cmd_check_perf},
    {"check datascale", "etcdctl check datascale [options] [flags]",
     "Check the memory usage of holding data for different workloads on a "
     "given server endpoint.",
     "If no endpoint is provided, localhost will be used. If multiple "
     "endpoints are provided, first endpoint will be used.",
     OPTS(check_datascale_opts), cmd_check_datascale},
    {"completion", "cairnctl completion bash [flags]",
     "Prints a bash completion script (source it, or put it in "
     "/etc/bash_completion.d/)",
     NULL, NULL, 0, cmd_completion},
};
#define CMDS_COUNT (sizeof(cmds) / sizeof(cmds[0]))

const struct ctl_cmd *ctl_cmds(size_t *count)
{
    *count = CMDS_COUNT;
    return cmds;
}

const struct ctl_opt *ctl_global_opts(size_t *count)
{
    *count = GLOBAL_COUNT;
    return global_opts;
}

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
    for (size_t i = 0; i < CMDS_COUNT; i++) {
        if (strcmp(cmds[i].name, name) == 0) {
            return &cmds[i];
        }
    }
    return NULL;
}

static const char *const groups[] = {"lease",    "member",  "endpoint", "alarm",
                                     "auth",     "user",    "role",     "check",
                                     "snapshot", "service", "config"};

int ctl_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout); /* keep the order of prompts and errors */
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

/* ---------------------------------------------------------------- flags */

static struct ctl_opt *opt_find(struct ctl *x, const char *name, size_t len,
                                char short_name)
{
    for (size_t i = 0; i < x->opts_count; i++) {
        struct ctl_opt *o = &x->opts[i];
        if (short_name != 0
                ? o->short_name == short_name
                : strlen(o->name) == len && memcmp(o->name, name, len) == 0) {
            return o;
        }
    }
    return NULL;
}

const char *ctl_flag(const struct ctl *x, const char *name)
{
    for (size_t i = 0; i < x->opts_count; i++) {
        if (strcmp(x->opts[i].name, name) == 0) {
            return x->opts[i].val != NULL ? x->opts[i].val : x->opts[i].def;
        }
    }
    return "";
}

bool ctl_flag_bool(const struct ctl *x, const char *name)
{
    const char *v = ctl_flag(x, name);
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
           strcmp(v, "t") == 0 || strcmp(v, "TRUE") == 0;
}

bool ctl_flag_int(const struct ctl *x, const char *name, int64_t *out)
{
    const char *v = ctl_flag(x, name);
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v == 0 || *end != 0) {
        ctl_fail(CTL_EXIT_ERROR,
                 "invalid argument \"%s\" for \"--%s\" flag: "
                 "strconv.ParseInt: parsing \"%s\": invalid syntax",
                 v, name, v);
        return false;
    }
    *out = n;
    return true;
}

/* Go durations as flags take: "5s", "500ms", "1m"; plain numbers are ns. */
static int64_t parse_duration_ms(const char *s, int64_t def)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s) {
        return def;
    }
    double ms = strcmp(end, "ms") == 0   ? v
                : strcmp(end, "s") == 0  ? v * 1000
                : strcmp(end, "m") == 0  ? v * 60000
                : strcmp(end, "us") == 0 ? v / 1000
                : strcmp(end, "h") == 0  ? v * 3600000
                                         : -1;
    return ms > 0 ? (int64_t)ms : def;
}

static bool is_number(const char *s)
{
    return *s >= '0' && *s <= '9';
}

static void print_opts(const struct ctl_opt *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char lhs[96];
        if (o[i].short_name != 0) {
            snprintf(lhs, sizeof(lhs), "  -%c, --%s", o[i].short_name,
                     o[i].name);
        } else {
            snprintf(lhs, sizeof(lhs), "      --%s", o[i].name);
        }
        char full[160];
        snprintf(full, sizeof(full), o[i].is_bool ? "%s[=%s]" : "%s=\"%s\"",
                 lhs, o[i].def);
        if (!o[i].is_bool && (o[i].def[0] == '[' || is_number(o[i].def))) {
            snprintf(full, sizeof(full), "%s=%s", lhs, o[i].def);
        }
        printf("%-40s %s\n", full, o[i].help);
    }
}

static void usage(const struct ctl_cmd *cmd)
{
    printf("NAME:\n\t%s - %s\n\nUSAGE:\n\t%s\n\n", cmd->name, cmd->summary,
           cmd->usage);
    if (cmd->description != NULL) {
        printf("DESCRIPTION:\n");
        const char *p = cmd->description;
        while (*p != 0) { /* one tab-indented line per line */
            const char *nl = strchr(p, '\n');
            size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
            printf("\t%.*s\n", (int)n, p);
            p += n + (nl != NULL);
        }
        printf("\n");
    }
    printf("OPTIONS:\n");
    struct ctl_opt help = {"help", 'h', true, "false", "help for", NULL};
    print_opts(cmd->opts, cmd->opts_count);
    print_opts(&help, 1);
    printf("\nGLOBAL OPTIONS:\n");
    print_opts(global_opts, GLOBAL_COUNT);
    printf("\n");
}

static void usage_main(void)
{
    printf("NAME:\n\tcairnctl - A simple command line client for Cairn and "
           "etcd3 (etcdctl compatible).\n\nUSAGE:\n\tcairnctl [flags]\n\n"
           "VERSION:\n\t%s\n\nAPI VERSION:\n\t3.4\n\n\nCOMMANDS:\n",
           "0.1.0");
    for (size_t i = 0; i < CMDS_COUNT; i++) {
        printf("\t%-20s%s\n", cmds[i].name, cmds[i].summary);
    }
    printf("\nOPTIONS:\n");
    struct ctl_opt help = {"help", 'h', true, "false", "help for cairnctl",
                           NULL};
    print_opts(&help, 1);
    print_opts(global_opts, GLOBAL_COUNT);
}

/* --------------------------------------------------------------- parsing */

static bool takes_value_anywhere(const char *name, size_t len, char sn)
{
    /* Used before the command is known: a flag that takes a value in any
     * command (or globally) consumes the next argument. */
#define N_(a) (sizeof(a) / sizeof(a[0]))
    const struct ctl_opt *tabs[] = {
        global_opts,       get_opts,         put_opts,
        del_opts,          watch_opts,       svc_register_opts,
        svc_list_opts,     cfg_publish_opts, cfg_get_opts,
        cfg_rollback_opts, cfg_watch_opts,   member_add_opts,
        user_add_opts,     lock_opts,        cfg_gray_put_opts,
        audit_opts,        check_perf_opts,  check_datascale_opts};
    const size_t counts[] = {
        GLOBAL_COUNT,          N_(get_opts),         N_(put_opts),
        N_(del_opts),          N_(watch_opts),       N_(svc_register_opts),
        N_(svc_list_opts),     N_(cfg_publish_opts), N_(cfg_get_opts),
        N_(cfg_rollback_opts), N_(cfg_watch_opts),   N_(member_add_opts),
        N_(user_add_opts),     N_(lock_opts),        N_(cfg_gray_put_opts),
        N_(audit_opts),        N_(check_perf_opts),  N_(check_datascale_opts)};
#undef N_
    for (size_t t = 0; t < sizeof(tabs) / sizeof(tabs[0]); t++) {
        for (size_t i = 0; i < counts[t]; i++) {
            const struct ctl_opt *o = &tabs[t][i];
            if ((sn != 0 && o->short_name == sn) ||
                (sn == 0 && strlen(o->name) == len &&
                 memcmp(o->name, name, len) == 0)) {
                return !o->is_bool;
            }
        }
    }
    return false;
}

/* The command of the first n words ("config gray put"), or NULL. */
static const struct ctl_cmd *cmd_of_words(const char *const *words, int n)
{
    char full[96] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(full);
        snprintf(full + l, sizeof(full) - l, "%s%s", i > 0 ? " " : "",
                 words[i]);
    }
    for (size_t i = 0; i < CMDS_COUNT; i++) {
        if (strcmp(cmds[i].name, full) == 0) {
            return &cmds[i];
        }
    }
    return NULL;
}

/* Finds the command: the longest match of the first one to three
 * positional words; skip[] gets the argv indexes of its words (-1 for
 * none), *group the group named by the first word when no command
 * matched it. */
static const struct ctl_cmd *find_cmd(int argc, char **argv, int skip[3],
                                      const char **group)
{
    const char *words[3] = {NULL, NULL, NULL};
    int idx[3] = {-1, -1, -1};
    int nw = 0;
    for (int i = 1; i < argc && nw < 3; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            break;
        }
        if (a[0] == '-' && a[1] != 0) {
            const char *n = a + (a[1] == '-' ? 2 : 1);
            if (strchr(n, '=') == NULL &&
                takes_value_anywhere(n, strlen(n), a[1] == '-' ? 0 : n[0]) &&
                (a[1] == '-' || n[1] == 0)) {
                i++;
            }
            continue;
        }
        words[nw] = a;
        idx[nw++] = i;
    }
    skip[0] = idx[0];
    skip[1] = skip[2] = -1;
    *group = NULL;
    for (int k = nw; k >= 1; k--) {
        const struct ctl_cmd *c = cmd_of_words(words, k);
        if (c != NULL) {
            for (int i = 1; i < k; i++) {
                skip[i] = idx[i];
            }
            return c;
        }
    }
    for (size_t g = 0; nw > 0 && g < sizeof(groups) / sizeof(groups[0]); g++) {
        if (strcmp(words[0], groups[g]) == 0) {
            *group = groups[g];
        }
    }
    return NULL;
}

/* Parses flags and positional args into x; an exit code or -1 to go on. */
static int parse_args(struct ctl *x, int argc, char **argv, const int skip[3],
                      bool *help)
{
    bool dash = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i == skip[0] || i == skip[1] || i == skip[2]) {
            continue;
        }
        if (dash || a[0] != '-' || a[1] == 0) {
            const char **dst = dash ? x->dash_args : x->args;
            size_t *n = dash ? &x->dash_args_count : &x->args_count;
            if (*n >= CTL_ARGS_MAX) {
                return ctl_fail(CTL_EXIT_BAD_ARGS, "too many arguments");
            }
            dst[(*n)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dash = true;
            x->dash_seen = true;
            continue;
        }
        bool is_long = a[1] == '-';
        const char *n = a + (is_long ? 2 : 1);
        const char *eq = strchr(n, '=');
        size_t len = eq != NULL ? (size_t)(eq - n) : strlen(n);
        if ((is_long && len == 4 && memcmp(n, "help", 4) == 0) ||
            (!is_long && n[0] == 'h')) {
            *help = true;
            continue;
        }
        struct ctl_opt *o =
            is_long ? opt_find(x, n, len, 0) : opt_find(x, NULL, 0, n[0]);
        if (o == NULL) {
            if (is_long) {
                ctl_fail(CTL_EXIT_ERROR, "unknown flag: --%.*s", (int)len, n);
            } else {
                ctl_fail(CTL_EXIT_ERROR, "unknown shorthand flag: '%c' in %s",
                         n[0], a);
            }
            return CTL_EXIT_ERROR;
        }
        const char *prev = o->val;
        if (!is_long && n[1] != 0 && n[1] != '=') {
            o->val = n + 1; /* -wjson */
        } else if (eq != NULL) {
            o->val = eq + 1;
        } else if (o->is_bool) {
            o->val = "true";
        } else if (i + 1 < argc) {
            o->val = argv[++i];
        } else {
            return ctl_fail(CTL_EXIT_ERROR, "flag needs an argument: --%s",
                            o->name);
        }
        if (prev != NULL && strcmp(o->name, "endpoints") == 0) {
            /* a string slice in pflag: a repeated flag appends */
            static char eps[4096];
            char joined[4096];
            snprintf(joined, sizeof(joined), "%s,%s", prev, o->val);
            memcpy(eps, joined, sizeof(eps));
            o->val = eps;
        }
    }
    return -1;
}

/* ETCDCTL_<FLAG> for each global flag not given on the command line. */
static int apply_env(struct ctl *x)
{
    for (size_t i = 0; i < x->opts_count; i++) {
        struct ctl_opt *o = &x->opts[i];
        if (o < &x->opts[x->opts_count - GLOBAL_COUNT]) {
            continue; /* command flags have no variables */
        }
        char var[64] = "ETCDCTL_";
        size_t n = strlen(var);
        for (const char *p = o->name; *p != 0 && n + 1 < sizeof(var); p++) {
            var[n++] =
                *p == '-'
                    ? '_'
                    : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        }
        var[n] = 0;
        const char *v = getenv(var);
        if (v == NULL) {
            continue;
        }
        if (o->val != NULL) {
            char ts[64];
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S",
                     localtime(&now.tv_sec));
            fprintf(stderr,
                    "%s.%06ld C | pkg/flags: conflicting environment variable "
                    "\"%s\" is shadowed by corresponding command-line flag "
                    "(either unset environment variable or disable flag)\n",
                    ts, now.tv_nsec / 1000, var);
            return CTL_EXIT_ERROR + 1000; /* no usage after it */
        }
        o->val = v;
    }
    return -1;
}

/* -w protobuf: the commands where etcdctl 3.4 has it and cairnctl prints
 * it (cairnctl_pb.c); -1 to go on, else the exit code after the error. */
static int protobuf_ok(const char *cmd)
{
    static const char *const yes[] = {
        "get", "put", "del", "watch", "txn", "lease grant",
        "lease revoke", /* refused after the revoke, as etcdctl */
        "lease list", "lease timetolive", "lease keep-alive", "member list",
        "member add", "member remove", "member update", "member promote",
        "alarm list", "alarm disarm", "move-leader", "user add", "user delete",
        "user get", "user list", "user passwd", "user grant-role",
        "user revoke-role", "role add", "role delete", "role get", "role list",
        "role grant-permission", "role revoke-permission",
        /* these print their own text, whatever the format */
        "compaction", "defrag", "snapshot save", "snapshot restore",
        "check perf", "check datascale", "auth enable", "auth disable", "lock",
        "elect", "version"};
    static const char *const never[] = {"endpoint health", "endpoint status",
                                        "endpoint hashkv", "snapshot status"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(cmd, yes[i]) == 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        if (strcmp(cmd, never[i]) == 0) {
            return ctl_fail(CTL_EXIT_BAD_FEATURE,
                            "protobuf not supported as output format");
        }
    }
    return ctl_fail(CTL_EXIT_BAD_FEATURE,
                    "protobuf output of %s is not supported by cairnctl yet",
                    cmd);
}

static int setup_globals(struct ctl *x)
{
    const char *w = ctl_flag(x, "write-out");
    x->fmt = strcmp(w, "json") == 0       ? CTL_JSON
             : strcmp(w, "fields") == 0   ? CTL_FIELDS
             : strcmp(w, "table") == 0    ? CTL_TABLE
             : strcmp(w, "simple") == 0   ? CTL_SIMPLE
             : strcmp(w, "protobuf") == 0 ? CTL_PROTOBUF
                                          : (enum ctl_fmt) - 1;
    if ((int)x->fmt == -1) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE, "unknown output format %s", w);
    }
    if (x->fmt == CTL_PROTOBUF) {
        int rc = protobuf_ok(x->cmd->name);
        if (rc >= 0) {
            return rc;
        }
    }
    x->hex = ctl_flag_bool(x, "hex");
    x->dial_timeout_ms = parse_duration_ms(ctl_flag(x, "dial-timeout"), 2000);
    x->command_timeout_ms =
        parse_duration_ms(ctl_flag(x, "command-timeout"), 5000);
    if (ctl_flag(x, "discovery-srv")[0] != 0) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE,
                        "DNS discovery is not supported by cairnctl yet");
    }
    static char eps_buf[4096];
    const char *eps = ctl_flag(x, "endpoints");
    snprintf(eps_buf, sizeof(eps_buf), "%s", eps);
    char *s = eps_buf;
    size_t sl = strlen(s);
    if (s[0] == '[' && s[sl - 1] == ']') { /* the default's display form,
                                            * not "[::1]:2379" */
        s[sl - 1] = 0;
        s++;
    }
    for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (x->endpoints_count == CAIRN_ENDPOINTS_MAX) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "too many endpoints");
        }
        x->endpoints[x->endpoints_count++] = tok;
    }
    if (x->endpoints_count == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "no endpoints");
    }
    return -1;
}

/* ---------------------------------------------------------------- client */

int64_t ctl_deadline(const struct ctl *x)
{
    return x->dial_timeout_ms + x->command_timeout_ms;
}

/* etcdctl's checks of the TLS files, in its order and words (Go's
 * os.Open error); false after printing the error. */
static bool tls_files_ok(const char *cert, const char *key, const char *ca)
{
    if ((cert[0] != 0) != (key[0] != 0)) {
        ctl_fail(CTL_EXIT_BAD_ARGS,
                 "KeyFile and CertFile must both be present[key: %s, cert: "
                 "%s]",
                 key, cert);
        return false;
    }
    const char *files[3] = {cert, key, ca};
    for (size_t i = 0; i < 3; i++) {
        if (files[i][0] == 0) {
            continue;
        }
        FILE *f = fopen(files[i], "r");
        if (f == NULL) {
            char why[128];
            snprintf(why, sizeof(why), "%s", strerror(errno));
            if (why[0] >= 'A' && why[0] <= 'Z') {
                why[0] = (char)(why[0] - 'A' + 'a');
            }
            ctl_fail(CTL_EXIT_BAD_ARGS, "open %s: %s", files[i], why);
            return false;
        }
        fclose(f);
    }
    return true;
}

/* The TLS options from --cacert, --cert, --key, --insecure-transport and
 * --insecure-skip-tls-verify (see the top of the file). */
static bool tls_options(struct ctl *x, struct cairn_options *opt)
{
    const char *ca = ctl_flag(x, "cacert");
    const char *cert = ctl_flag(x, "cert");
    const char *key = ctl_flag(x, "key");
    if (!tls_files_ok(cert, key, ca)) {
        return false;
    }
    bool files = ca[0] != 0 || cert[0] != 0 || key[0] != 0;
    bool config = files || !ctl_flag_bool(x, "insecure-transport");
    opt->ca_file = ca[0] != 0 ? ca : NULL;
    opt->cert_file = cert[0] != 0 ? cert : NULL;
    opt->key_file = key[0] != 0 ? key : NULL;
    opt->tls = config;
    opt->insecure_skip_verify =
        config && ctl_flag_bool(x, "insecure-skip-tls-verify");
    return true;
}

static struct cairn_client *client_new(struct ctl *x, const char *const *eps,
                                       size_t n)
{
    struct cairn_options opt;
    cairn_options_init(&opt);
    opt.endpoints = eps;
    opt.endpoints_count = n;
    if (!tls_options(x, &opt)) {
        return NULL;
    }
    opt.dial_timeout_ms = x->dial_timeout_ms;
    opt.timeout_ms = ctl_deadline(x);
    char user[256]; /* a local: check perf makes clients from 50 threads */
    const char *u = ctl_flag(x, "user");
    const char *pw = ctl_flag(x, "password");
    if (u[0] != 0) {
        snprintf(user, sizeof(user), "%s", u);
        char *colon = strchr(user, ':');
        if (colon != NULL && pw[0] == 0) {
            *colon = 0;
            pw = colon + 1;
        } else if (colon == NULL && pw[0] == 0) {
            ctl_fail(CTL_EXIT_BAD_ARGS, "password is missing (cairnctl does "
                                        "not prompt: use --password or "
                                        "name:password)");
            return NULL;
        }
        opt.user = user;
        opt.password = pw;
    }
    struct cairn_client *c = NULL;
    char why[512] = "";
    int rc = cairn_client_new_ex(&opt, &c, why, sizeof(why));
    if (rc != 0) { /* e.g. "ca_file x.pem: No such file or directory" */
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", why[0] ? why : cairn_strerror(rc));
        return NULL;
    }
    return c;
}

struct cairn_client *ctl_client(struct ctl *x)
{
    if (x->client == NULL) {
        x->client = client_new(x, (const char *const *)x->endpoints,
                               x->endpoints_count);
    }
    return x->client;
}

struct cairn_client *ctl_client_new(struct ctl *x)
{
    return client_new(x, (const char *const *)x->endpoints, x->endpoints_count);
}

struct cairn_client *ctl_client_for(struct ctl *x, const char *endpoint)
{
    return client_new(x, &endpoint, 1);
}

static const char *grpc_code_name(int code)
{
    static const char *const names[] = {"OK",
                                        "Canceled",
                                        "Unknown",
                                        "InvalidArgument",
                                        "DeadlineExceeded",
                                        "NotFound",
                                        "AlreadyExists",
                                        "PermissionDenied",
                                        "ResourceExhausted",
                                        "FailedPrecondition",
                                        "Aborted",
                                        "OutOfRange",
                                        "Unimplemented",
                                        "Internal",
                                        "Unavailable",
                                        "DataLoss",
                                        "Unauthenticated"};
    return code >= 0 && code <= 16 ? names[code] : "Unknown";
}

void ctl_err_text(struct cairn_client *c, int err, char *out, size_t size)
{
    const char *msg = cairn_client_errmsg(c);
    int gc = cairn_client_grpc_code(c);
    if (err == CAIRN_E_UNAVAILABLE || err == CAIRN_E_TIMEOUT) {
        snprintf(out, size, "context deadline exceeded");
    } else if (gc > 0 && strncmp(msg, "etcdserver: ", 12) != 0 &&
               strncmp(msg, "mvcc: ", 6) != 0) {
        snprintf(out, size, "rpc error: code = %s desc = %s",
                 grpc_code_name(gc), msg);
    } else {
        snprintf(out, size, "%s", msg[0] != 0 ? msg : cairn_strerror(err));
    }
}

void ctl_print_err(struct cairn_client *c, int err)
{
    char t[1024];
    ctl_err_text(c, err, t, sizeof(t));
    fputs(t, stderr);
}

int ctl_fail_call(struct ctl *x, struct cairn_client *c, int err, int code)
{
    (void)x;
    const char *msg = cairn_client_errmsg(c);
    if ((err == CAIRN_E_UNAVAILABLE || err == CAIRN_E_TIMEOUT) &&
        strstr(msg, "handshake failed") != NULL) {
        /* where etcdctl logs its balancer's warning: the TLS reason */
        fprintf(stderr, "%s\n", msg);
    }
    if (err == CAIRN_E_AUTH_FAILED && code != 0) {
        code = CTL_EXIT_BAD_CONN; /* etcdctl fails making its client */
    }
    char t[1024];
    ctl_err_text(c, err, t, sizeof(t));
    return ctl_fail(code, "%s", t);
}

int cmd_version(struct ctl *x)
{
    (void)x;
    printf("etcdctl version: 3.4.23\nAPI version: 3.4\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct ctl x;
    memset(&x, 0, sizeof(x));
    int skip[3];
    const char *group;
    const struct ctl_cmd *cmd = find_cmd(argc, argv, skip, &group);
    if (cmd == NULL) {
        bool help = skip[0] < 0;
        for (int i = 1; i < argc; i++) {
            help = help || strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0;
        }
        if (help || group != NULL) {
            usage_main();
            return 0;
        }
        fprintf(stderr,
                "Error: unknown command \"%s\" for \"cairnctl\"\n"
                "Run 'cairnctl --help' for usage.\n",
                argv[skip[0]]);
        return CTL_EXIT_ERROR;
    }
    x.cmd = cmd;
    for (size_t i = 0; i < cmd->opts_count; i++) {
        x.opts[x.opts_count++] = cmd->opts[i];
    }
    for (size_t i = 0; i < GLOBAL_COUNT; i++) {
        x.opts[x.opts_count++] = global_opts[i];
    }
    bool help = false;
    int rc = parse_args(&x, argc, argv, skip, &help);
    if (rc < 0 && help) {
        usage(cmd);
        return 0;
    }
    if (rc < 0) {
        rc = apply_env(&x);
    }
    if (rc < 0) {
        rc = setup_globals(&x);
    }
    if (rc < 0) {
        rc = cmd->fn(&x);
    } else if (rc == CTL_EXIT_ERROR) {
        usage(cmd);
    } else if (rc >= 1000) {
        rc -= 1000;
    }
    fflush(stdout);
    cairn_client_free(x.client);
    return rc;
}
