// soakdrv - the load driver of tests/soak/soak.sh (`make soak`, issue 15):
// holds one cairnd member under every kind of client it serves for a set
// time, samples the member's memory, fds and CPU every -sample seconds,
// and ends with a verdict.
//
// Built by soak.sh in GOPATH mode against Debian's packaged Go sources
// (go.etcd.io/etcd/clientv3 from golang-etcd-server-dev, gorilla
// websocket), offline, like bench/regbench. One process, so the load does
// not take the 2 cores away from the member more than it must; its own CPU
// share is printed on every sample line.
//
// What it holds (defaults):
//
//	-conns 1000     gRPC connections (one clientv3 client each)
//	-watchers 10000 etcd watchers, spread evenly over the connections (all
//	                of a connection's watchers share one Watch stream), on
//	                -prefixes 100 prefixes /soak/w/NN/ that see the writes
//	-leases 5000    leases (TTL -lease-ttl) kept alive by each
//	                connection's LeaseKeepAlive stream; a few more are
//	                granted and revoked every second (lease churn)
//	-rate 100       writes a second over all connections: puts (a third
//	                with one of the held leases) and deletes (one in five)
//	                on the watched prefixes
//	-reg-subs 100   discovery subscribers (/api/v1/watch/registry/soak/<svc>,
//	                one in five over SSE, the rest WebSocket) of -services 10
//	-sessions 50    registry sessions heartbeating every 3 s over keep-alive
//	                HTTP, 2 instances each; -churn-ms apart one instance is
//	                deregistered or registered again
//	-cfg-subs 100   config subscribers (WebSocket /api/v1/watch/config/...)
//	                of -configs 5 configs, acking every release; one config
//	                published -pub-ms apart
//
// Checks, printed as "PASS" or "FAIL: reasons" on the last line (exit 0/1):
//   - no client error (a compaction seen by a watcher is counted apart);
//   - every watcher got exactly one event per write it should have seen
//     (per prefix, counted from the writes' own answers), in revision order;
//     every discovery subscriber one event per register/deregister of its
//     service, every config subscriber one put per publish of its config,
//     and the member's subscriber list shows each acked the last version;
//   - every held lease still alive at the end (LeaseTimeToLive);
//   - RSS flat: the last minute's max VmRSS within -rss-slack (10%) of the
//     second minute's max.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc"
)

var (
	ep       = flag.String("ep", "127.0.0.1:2379", "member host:port")
	pid      = flag.Int("pid", 0, "member PID (for /proc samples)")
	seconds  = flag.Int("seconds", 600, "how long the load is held once set up")
	sampleS  = flag.Int("sample", 10, "seconds between samples")
	nConns   = flag.Int("conns", 1000, "gRPC connections")
	nWatch   = flag.Int("watchers", 10000, "etcd watchers")
	nPrefix  = flag.Int("prefixes", 100, "watched prefixes")
	nLeases  = flag.Int("leases", 5000, "leases kept alive")
	leaseTTL = flag.Int64("lease-ttl", 30, "TTL of the held leases (s)")
	rate     = flag.Int("rate", 100, "writes a second")
	leaseEv  = flag.Int("lease-every", 3, "one put in this many carries a lease (0: none)")
	churnOn  = flag.Bool("lease-churn", true, "grant and revoke a lease every 200 ms")
	nSvc     = flag.Int("services", 10, "registry services")
	nRegSubs = flag.Int("reg-subs", 100, "discovery subscribers")
	nSess    = flag.Int("sessions", 50, "registry sessions (2 instances each)")
	churnMs  = flag.Int("churn-ms", 100, "ms between instance register/deregister")
	nCfg     = flag.Int("configs", 5, "configs")
	nCfgSubs = flag.Int("cfg-subs", 100, "config subscribers")
	pubMs    = flag.Int("pub-ms", 2000, "ms between publishes")
	rssSlack = flag.Float64("rss-slack", 0.10, "allowed RSS growth, last minute vs second minute")
)

var base string // http://ep/api/v1

// ------------------------------------------------------------- error counts

var errNames = []string{"dial", "put", "delete", "watch", "watch_order",
	"lease_grant", "lease_keepalive", "lease_churn", "session", "register",
	"reg_stream", "cfg_publish", "cfg_stream", "cfg_ack"}

var (
	errCounts = map[string]*int64{}
	compacted int64 // watch responses with a compaction (expected, counted apart)
	stopping  int32 // set when the load is being taken down: closes are not errors
)

func init() {
	for _, n := range errNames {
		errCounts[n] = new(int64)
	}
}

func fail(kind string, format string, a ...interface{}) {
	if atomic.LoadInt32(&stopping) != 0 {
		return
	}
	if atomic.AddInt64(errCounts[kind], 1) <= 3 {
		log.Printf("error %s: %s", kind, fmt.Sprintf(format, a...))
	}
}

func errTotal() (int64, string) {
	var t int64
	var parts []string
	for _, n := range errNames {
		v := atomic.LoadInt64(errCounts[n])
		t += v
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", n, v))
		}
	}
	return t, strings.Join(parts, ",")
}

// ------------------------------------------------------------------- /proc

func procStatus(p int) (rss, anon int64) {
	b, _ := ioutil.ReadFile(fmt.Sprintf("/proc/%d/status", p))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "RssAnon:":
			anon = v
		}
	}
	return
}

func procTicks(p int) int64 {
	b, err := ioutil.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func procFds(p int) int {
	d, err := ioutil.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
	if err != nil {
		return -1
	}
	return len(d)
}

// gauges reads a few of the member's /metrics gauges: the in-memory Raft
// log (bounded by --raft-log-memory-bytes) and the current revision, to
// tell a bounded cache filling from a leak.
func gauges(hc *http.Client) string {
	st, b, err := call(hc, "GET", "http://"+*ep+"/metrics", "")
	if err != nil || st != 200 {
		return "metrics=?"
	}
	v := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			v[f[0]] = f[1]
		}
	}
	kb, _ := strconv.ParseFloat(v["cairn_raft_log_memory_bytes"], 64)
	hu, _ := strconv.ParseFloat(v["cairn_process_heap_inuse_bytes"], 64)
	hs, _ := strconv.ParseFloat(v["cairn_process_heap_system_bytes"], 64)
	// heap: malloc's bytes in use / held from the system; RSS may grow
	// while these stay put (first writes to pages allocated earlier)
	h2, _ := strconv.ParseFloat(v["cairn_grpc_h2_memory_bytes"], 64)
	dbu, _ := strconv.ParseFloat(v["etcd_mvcc_db_total_size_in_use_in_bytes"], 64)
	dbt, _ := strconv.ParseFloat(v["etcd_mvcc_db_total_size_in_bytes"], 64)
	// h2: nghttp2's own memory (HPACK tables and the like); db: the
	// store's pages in use / its file, whose pages count in RSS once read
	return fmt.Sprintf("heap=%.0f/%.0fkB raftlog=%.0fkB/%s h2=%.0fkB db=%.0f/%.0fkB rev=%s",
		hu/1024, hs/1024, kb/1024, v["cairn_raft_log_memory_entries"], h2/1024,
		dbu/1024, dbt/1024, v["etcd_debugging_mvcc_current_revision"])
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// ------------------------------------------------------------------ etcd side

type watcher struct {
	prefix int
	got    int64
	lastRv int64
}

var (
	clients   []*clientv3.Client
	watchers  []*watcher
	wantEv    []int64 // per prefix: events the writes made (from their answers)
	leases    []clientv3.LeaseID
	kaResps   int64
	writes    int64
	leaseKeys int64
)

func dialAll() {
	clients = make([]*clientv3.Client, *nConns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			for try := 0; ; try++ {
				c, err := clientv3.New(clientv3.Config{Endpoints: []string{*ep},
					DialTimeout: 20 * time.Second,
					DialOptions: []grpc.DialOption{grpc.WithBlock()}})
				if err == nil {
					clients[i] = c
					return
				}
				if try == 2 {
					log.Fatalf("connection %d: %v", i, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}(i)
	}
	wg.Wait()
}

// watchAll opens the watchers; returns once every one is created.
func watchAll(ctx context.Context) {
	watchers = make([]*watcher, *nWatch)
	var wg sync.WaitGroup
	for i := range watchers {
		w := &watcher{prefix: i % *nPrefix}
		watchers[i] = w
		cli := clients[i%len(clients)]
		key := fmt.Sprintf("/soak/w/%02d/", w.prefix)
		wg.Add(1)
		go func(w *watcher) {
			wch := cli.Watch(ctx, key, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
			first := true
			for resp := range wch {
				if first {
					first = false
					wg.Done()
					if !resp.Created {
						fail("watch", "%s: first response is not a creation", key)
					}
					continue
				}
				if resp.CompactRevision != 0 {
					atomic.AddInt64(&compacted, 1)
					continue
				}
				if err := resp.Err(); err != nil {
					fail("watch", "%s: %v", key, err)
					continue
				}
				for _, ev := range resp.Events {
					if ev.Kv.ModRevision <= w.lastRv {
						fail("watch_order", "%s: revision %d after %d", key, ev.Kv.ModRevision, w.lastRv)
					}
					w.lastRv = ev.Kv.ModRevision
				}
				atomic.AddInt64(&w.got, int64(len(resp.Events)))
			}
			if first {
				wg.Done()
			}
			if ctx.Err() == nil {
				fail("watch", "%s: watch channel closed", key)
			}
		}(w)
	}
	wg.Wait()
}

func grantAll(ctx context.Context) {
	leases = make([]clientv3.LeaseID, *nLeases)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	for i := range leases {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			cli := clients[i%len(clients)]
			g, err := cli.Grant(ctx, *leaseTTL)
			if err != nil {
				fail("lease_grant", "%v", err)
				return
			}
			leases[i] = g.ID
			ch, err := cli.KeepAlive(ctx, g.ID)
			if err != nil {
				fail("lease_keepalive", "%x: %v", g.ID, err)
				return
			}
			go func() {
				for r := range ch {
					if r.TTL <= 0 {
						fail("lease_keepalive", "%x: ttl %d", g.ID, r.TTL)
					}
					atomic.AddInt64(&kaResps, 1)
				}
				if ctx.Err() == nil {
					fail("lease_keepalive", "%x: keep-alive channel closed (lease lost)", g.ID)
				}
			}()
		}(i)
	}
	wg.Wait()
}

// writer: -rate ops a second over every connection in turn.
func writer(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	const workers = 8
	tick := time.Second * workers / time.Duration(*rate)
	var iw sync.WaitGroup
	for k := 0; k < workers; k++ {
		iw.Add(1)
		go func(k int) {
			defer iw.Done()
			rnd := rand.New(rand.NewSource(int64(k) + 1))
			t := time.NewTicker(tick)
			defer t.Stop()
			for n := k; ; n += workers {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				p := rnd.Intn(*nPrefix)
				key := fmt.Sprintf("/soak/w/%02d/k%d", p, rnd.Intn(50))
				cli := clients[n%len(clients)]
				octx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				switch {
				case n%5 == 4:
					r, err := cli.Delete(octx, key)
					if err != nil {
						fail("delete", "%s: %v", key, err)
					} else {
						atomic.AddInt64(&wantEv[p], r.Deleted)
					}
				default:
					var opts []clientv3.OpOption
					if *leaseEv > 0 && n%*leaseEv == 0 && len(leases) > 0 {
						if l := leases[rnd.Intn(len(leases))]; l != 0 {
							opts = append(opts, clientv3.WithLease(l))
							atomic.AddInt64(&leaseKeys, 1)
						}
					}
					_, err := cli.Put(octx, key, strconv.Itoa(n), opts...)
					if err != nil {
						fail("put", "%s: %v", key, err)
					} else {
						atomic.AddInt64(&wantEv[p], 1)
					}
				}
				cancel()
				atomic.AddInt64(&writes, 1)
			}
		}(k)
	}
	iw.Wait()
}

// leaseChurn grants and revokes a short lease every 200 ms.
func leaseChurn(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cli := clients[(n*7)%len(clients)]
		octx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g, err := cli.Grant(octx, 5)
		if err == nil {
			_, err = cli.Revoke(octx, g.ID)
		}
		cancel()
		if err != nil {
			fail("lease_churn", "%v", err)
		}
	}
}

// ------------------------------------------------------------- HTTP side

func httpClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
}

func call(c *http.Client, method, url, body string) (int, []byte, error) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("content-type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := ioutil.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b, err
}

// streamSub is one discovery or config subscriber; counts its changes.
type streamSub struct {
	target int // service or config index
	got    int64
	lastRv int64
	wsc    *websocket.Conn
	closer func()
}

var (
	regSubs []*streamSub
	cfgSubs []*streamSub
	regWant []int64 // per service: registers + deregisters answered 200
	cfgWant []int64 // per config: publishes answered 200
	cfgVer  []int64 // per config: last version published
	regOps  int64
	hbs     int64
	pubs    int64
)

type streamMsg struct {
	Type     string `json:"type"`
	Revision int64  `json:"revision"`
	Version  int64  `json:"version"`
	Name     string `json:"name"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

// onMsg handles one stream message; returns the message when it is a change.
func (s *streamSub) onMsg(kind string, b []byte) *streamMsg {
	var m streamMsg
	if err := json.Unmarshal(b, &m); err != nil {
		fail(kind, "bad message %q: %v", b, err)
		return nil
	}
	switch m.Type {
	case "snapshot":
		s.lastRv = m.Revision
		return nil
	case "put", "delete":
		if m.Revision <= s.lastRv {
			fail(kind, "revision %d after %d", m.Revision, s.lastRv)
		}
		s.lastRv = m.Revision
		atomic.AddInt64(&s.got, 1)
		return &m
	case "compacted":
		atomic.AddInt64(&compacted, 1)
		return nil
	default:
		fail(kind, "message %s", b)
		return nil
	}
}

var wsDialer = websocket.Dialer{HandshakeTimeout: 30 * time.Second,
	ReadBufferSize: 4096, WriteBufferSize: 1024}

// subscribeWS opens s on url and waits for its snapshot; onChange runs for
// every later change (on the reader goroutine).
func subscribeWS(s *streamSub, kind, url string, onChange func(*streamMsg)) error {
	c, _, err := wsDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	_, b, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return err
	}
	s.onMsg(kind, b)
	s.wsc = c
	s.closer = func() { c.Close() }
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				fail(kind, "stream closed: %v", err)
				return
			}
			if m := s.onMsg(kind, b); m != nil && onChange != nil {
				onChange(m)
			}
		}
	}()
	return nil
}

// subscribeSSE opens s as Server-Sent Events and waits for its snapshot.
func subscribeSSE(s *streamSub, kind, url string) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	s.closer = func() { resp.Body.Close() }
	rd := bufio.NewReader(resp.Body)
	next := func() ([]byte, error) {
		for {
			l, err := rd.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			if len(l) > 6 && string(l[:6]) == "data: " {
				return l[6:], nil
			}
		}
	}
	b, err := next()
	if err != nil {
		resp.Body.Close()
		return err
	}
	s.onMsg(kind, b)
	go func() {
		for {
			b, err := next()
			if err != nil {
				fail(kind, "SSE stream closed: %v", err)
				return
			}
			s.onMsg(kind, b)
		}
	}()
	return nil
}

type session struct {
	id  string
	svc int
	up  [2]bool
}

var sessions []*session

func instURL(s *session, k int) string {
	return fmt.Sprintf("%s/registry/soak/svc%d/%s-%d", base, s.svc, s.id, k)
}

func regBody(s *session, k int) string {
	return fmt.Sprintf(`{"addr":"10.1.%d.%d:8080","session":"%s","labels":{"k":"%d"}}`,
		s.svc, k, s.id, k)
}

func registrySetup(hc *http.Client) {
	sessions = make([]*session, *nSess)
	for i := range sessions {
		st, b, err := call(hc, "POST", base+"/sessions", `{"ttl":10}`)
		if err != nil || st != 200 {
			log.Fatalf("session: %d %s %v", st, b, err)
		}
		var r struct{ Session string }
		json.Unmarshal(b, &r)
		s := &session{id: r.Session, svc: i % *nSvc}
		sessions[i] = s
		for k := 0; k < 2; k++ {
			st, b, err := call(hc, "PUT", instURL(s, k), regBody(s, k))
			if err != nil || st != 200 {
				log.Fatalf("register: %d %s %v", st, b, err)
			}
			s.up[k] = true
		}
	}
	regWant = make([]int64, *nSvc)
	regSubs = make([]*streamSub, *nRegSubs)
	for i := range regSubs {
		s := &streamSub{target: i % *nSvc}
		regSubs[i] = s
		url := fmt.Sprintf("%s/watch/registry/soak/svc%d", base, s.target)
		var err error
		if i%5 == 4 {
			err = subscribeSSE(s, "reg_stream", url)
		} else {
			err = subscribeWS(s, "reg_stream", "ws"+url[4:], nil)
		}
		if err != nil {
			log.Fatalf("discovery subscriber %d: %v", i, err)
		}
	}
}

// heartbeats keeps every session alive, each every 3 s.
func heartbeats(ctx context.Context, wg *sync.WaitGroup, hc *http.Client) {
	defer wg.Done()
	gap := 3 * time.Second / time.Duration(len(sessions))
	t := time.NewTicker(gap)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := sessions[n%len(sessions)]
		st, b, err := call(hc, "POST", base+"/sessions/"+s.id+"/keepalive", "")
		if err != nil || st != 200 {
			fail("session", "keepalive %s: %d %s %v", s.id, st, b, err)
		}
		atomic.AddInt64(&hbs, 1)
	}
}

// churn deregisters or registers again one instance every -churn-ms.
func churn(ctx context.Context, wg *sync.WaitGroup, hc *http.Client) {
	defer wg.Done()
	rnd := rand.New(rand.NewSource(7))
	t := time.NewTicker(time.Duration(*churnMs) * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := sessions[rnd.Intn(len(sessions))]
		k := rnd.Intn(2)
		var st int
		var b []byte
		var err error
		if s.up[k] {
			st, b, err = call(hc, "DELETE", instURL(s, k), "")
		} else {
			st, b, err = call(hc, "PUT", instURL(s, k), regBody(s, k))
		}
		if err != nil || st != 200 {
			fail("register", "%s: %d %s %v", instURL(s, k), st, b, err)
			continue
		}
		s.up[k] = !s.up[k]
		atomic.AddInt64(&regWant[s.svc], 1)
		atomic.AddInt64(&regOps, 1)
	}
}

func cfgURL(i int) string { return fmt.Sprintf("%s/config/soak/app/cfg%d.yaml", base, i) }

func publish(hc *http.Client, i int, n int64) error {
	body := fmt.Sprintf(`{"content":"pool: %d\nname: cfg%d\n","format":"yaml","message":"soak %d"}`, n, i, n)
	st, b, err := call(hc, "PUT", cfgURL(i), body)
	if err != nil || st != 200 {
		return fmt.Errorf("%d %s %v", st, b, err)
	}
	var r struct{ Version int64 }
	json.Unmarshal(b, &r)
	atomic.StoreInt64(&cfgVer[i], r.Version)
	return nil
}

func configSetup(hc *http.Client) {
	cfgWant = make([]int64, *nCfg)
	cfgVer = make([]int64, *nCfg)
	for i := 0; i < *nCfg; i++ {
		if err := publish(hc, i, 0); err != nil {
			log.Fatalf("publish: %v", err)
		}
	}
	cfgSubs = make([]*streamSub, *nCfgSubs)
	for i := range cfgSubs {
		s := &streamSub{target: i % *nCfg}
		cfgSubs[i] = s
		name := fmt.Sprintf("cfg%d.yaml", s.target)
		url := fmt.Sprintf("ws%s/watch/config/soak/app/%s?client_id=soak-%d", base[4:], name, i)
		var mu sync.Mutex
		ack := func(m *streamMsg) {
			mu.Lock()
			err := s.wsc.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(
				`{"ack":{"name":%q,"version":%d}}`, name, m.Version)))
			mu.Unlock()
			if err != nil {
				fail("cfg_ack", "%s: %v", name, err)
			}
		}
		if err := subscribeWS(s, "cfg_stream", url, ack); err != nil {
			log.Fatalf("config subscriber %d: %v", i, err)
		}
		// the snapshot's release is acked too, so every subscriber acks
		// the config's current version from the start
		mu.Lock()
		s.wsc.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(
			`{"ack":{"name":%q,"version":%d}}`, name, cfgVer[s.target])))
		mu.Unlock()
	}
}

func publisher(ctx context.Context, wg *sync.WaitGroup, hc *http.Client) {
	defer wg.Done()
	t := time.NewTicker(time.Duration(*pubMs) * time.Millisecond)
	defer t.Stop()
	for n := int64(1); ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		i := int(n % int64(*nCfg))
		if err := publish(hc, i, n); err != nil {
			fail("cfg_publish", "cfg%d: %v", i, err)
			continue
		}
		atomic.AddInt64(&cfgWant[i], 1)
		atomic.AddInt64(&pubs, 1)
	}
}

// -------------------------------------------------------------- the checks

func eventsGot() (w, r, c int64) {
	for _, x := range watchers {
		w += atomic.LoadInt64(&x.got)
	}
	for _, x := range regSubs {
		r += atomic.LoadInt64(&x.got)
	}
	for _, x := range cfgSubs {
		c += atomic.LoadInt64(&x.got)
	}
	return
}

func eventsWant() (w, r, c int64) {
	for _, x := range watchers {
		w += atomic.LoadInt64(&wantEv[x.prefix])
	}
	for _, x := range regSubs {
		r += atomic.LoadInt64(&regWant[x.target])
	}
	for _, x := range cfgSubs {
		c += atomic.LoadInt64(&cfgWant[x.target])
	}
	return
}

// mismatched counts the subscribers whose count is not what they should have.
func mismatched() (w, r, c int) {
	for _, x := range watchers {
		if atomic.LoadInt64(&x.got) != wantEv[x.prefix] {
			w++
		}
	}
	for _, x := range regSubs {
		if atomic.LoadInt64(&x.got) != regWant[x.target] {
			r++
		}
	}
	for _, x := range cfgSubs {
		if atomic.LoadInt64(&x.got) != cfgWant[x.target] {
			c++
		}
	}
	return
}

// acksBehind asks the member for each config's subscribers: how many have
// not acked the config's last version.
func acksBehind(hc *http.Client) (int, error) {
	behind := 0
	for i := 0; i < *nCfg; i++ {
		st, b, err := call(hc, "GET", cfgURL(i)+"/subscribers", "")
		if err != nil || st != 200 {
			return -1, fmt.Errorf("subscribers: %d %s %v", st, b, err)
		}
		var r struct {
			Subscribers []struct {
				AckedVersion int64 `json:"acked_version"`
			}
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return -1, err
		}
		for _, s := range r.Subscribers {
			if s.AckedVersion != cfgVer[i] {
				behind++
			}
		}
		if len(r.Subscribers) != *nCfgSubs / *nCfg {
			return -1, fmt.Errorf("cfg%d: %d subscribers listed, want %d", i,
				len(r.Subscribers), *nCfgSubs / *nCfg)
		}
	}
	return behind, nil
}

func leasesLost() int {
	var lost int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i, l := range leases {
		if l == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, l clientv3.LeaseID) {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := clients[i%len(clients)].TimeToLive(ctx, l)
			cancel()
			if err != nil || r.TTL <= 0 {
				if atomic.AddInt64(&lost, 1) <= 3 {
					log.Printf("lease %x: ttl %v %v", l, r, err)
				}
			}
		}(i, l)
	}
	wg.Wait()
	return int(lost)
}

type sample struct {
	t         int
	rss, anon int64
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("soakdrv: ")
	base = "http://" + *ep + "/api/v1"
	if *pid == 0 {
		log.Fatal("-pid is required")
	}
	wantEv = make([]int64, *nPrefix)
	t0 := time.Now()
	srv0, cli0 := procTicks(*pid), selfCPU()

	ctx, cancel := context.WithCancel(context.Background())
	dialAll()
	log.Printf("%d connections in %.1fs", len(clients), time.Since(t0).Seconds())
	watchAll(ctx)
	log.Printf("%d watchers created (%.1fs)", len(watchers), time.Since(t0).Seconds())
	grantAll(ctx)
	log.Printf("%d leases kept alive (%.1fs)", len(leases), time.Since(t0).Seconds())
	hc := httpClient(16)
	registrySetup(hc)
	log.Printf("%d sessions, %d instances, %d discovery subscribers (%.1fs)",
		len(sessions), 2*len(sessions), len(regSubs), time.Since(t0).Seconds())
	configSetup(hc)
	log.Printf("%d configs, %d config subscribers (%.1fs)", *nCfg, len(cfgSubs),
		time.Since(t0).Seconds())
	setupCPU := float64(procTicks(*pid)-srv0) / 100
	log.Printf("set up in %.1fs (member CPU %.1fs, driver CPU %.1fs); holding %ds",
		time.Since(t0).Seconds(), setupCPU, selfCPU()-cli0, *seconds)

	lctx, lcancel := context.WithCancel(context.Background())
	var lwg sync.WaitGroup
	if *churnOn {
		lwg.Add(1)
		go leaseChurn(lctx, &lwg)
	}
	if *rate > 0 {
		lwg.Add(1)
		go writer(lctx, &lwg)
	}
	if len(sessions) > 0 {
		lwg.Add(2)
		go heartbeats(lctx, &lwg, httpClient(4))
		go churn(lctx, &lwg, httpClient(2))
	}
	if *nCfg > 0 {
		lwg.Add(1)
		go publisher(lctx, &lwg, httpClient(1))
	}

	// Samples.
	var samples []sample
	hold := time.Now()
	srvT, cliT, lastT := procTicks(*pid), selfCPU(), hold
	srvHold, cliHold := srvT, cliT
	var maxFds int
	tick := time.NewTicker(time.Duration(*sampleS) * time.Second)
	for {
		<-tick.C
		now := time.Now()
		el := now.Sub(hold).Seconds()
		rss, anon := procStatus(*pid)
		fds := procFds(*pid)
		if fds > maxFds {
			maxFds = fds
		}
		st, ct := procTicks(*pid), selfCPU()
		dt := now.Sub(lastT).Seconds()
		scpu := float64(st-srvT) / 100 / dt * 100
		ccpu := (ct - cliT) / dt * 100
		srvT, cliT, lastT = st, ct, now
		et, eparts := errTotal()
		gw, gr, gc := eventsGot()
		samples = append(samples, sample{int(el + 0.5), rss, anon})
		fmt.Printf("soak: t=%4.0fs rss=%dkB anon=%dkB fds=%d cpu=%.1f%% driver=%.1f%% %s "+
			"writes=%d events=%d reg_events=%d cfg_events=%d keepalives=%d hb=%d regops=%d pubs=%d compacted=%d errors=%d%s\n",
			el, rss, anon, fds, scpu, ccpu, gauges(hc), atomic.LoadInt64(&writes), gw, gr, gc,
			atomic.LoadInt64(&kaResps), atomic.LoadInt64(&hbs), atomic.LoadInt64(&regOps),
			atomic.LoadInt64(&pubs), atomic.LoadInt64(&compacted), et,
			map[bool]string{true: " (" + eparts + ")", false: ""}[et > 0])
		if rss == 0 {
			log.Printf("member %d is gone", *pid)
			break
		}
		if el >= float64(*seconds)-0.5 {
			break
		}
	}
	tick.Stop()
	holdSecs := time.Since(hold).Seconds()
	srvCPU := float64(procTicks(*pid)-srvHold) / 100
	cliCPU := selfCPU() - cliHold

	// Stop the load, let the streams drain, then check.
	lcancel()
	lwg.Wait()
	var reasons []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		w, r, c := mismatched()
		if w+r+c == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	gw, gr, gc := eventsGot()
	ww, wr, wc := eventsWant()
	mw, mr, mc := mismatched()
	if mw > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of %d watchers off their count (%d events got, %d want)", mw, len(watchers), gw, ww))
	}
	if mr > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of %d discovery subscribers off their count (%d got, %d want)", mr, len(regSubs), gr, wr))
	}
	if mc > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of %d config subscribers off their count (%d got, %d want)", mc, len(cfgSubs), gc, wc))
	}
	time.Sleep(500 * time.Millisecond) // the last acks on their way
	behind, err := acksBehind(hc)
	if err != nil {
		reasons = append(reasons, "config subscribers: "+err.Error())
	} else if behind > 0 {
		reasons = append(reasons, fmt.Sprintf("%d config subscribers have not acked the last version", behind))
	}
	if lost := leasesLost(); lost > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of %d leases lost", lost, len(leases)))
	}
	et, eparts := errTotal()
	if et > 0 {
		reasons = append(reasons, fmt.Sprintf("%d client errors (%s)", et, eparts))
	}

	// RSS: the second minute's max against the last minute's.
	var m2, mLast, mMax, a2, aLast int64
	for _, s := range samples {
		if s.t > 60 && s.t <= 120 {
			if s.rss > m2 {
				m2, a2 = s.rss, s.anon
			}
		}
		if float64(s.t) > holdSecs-60.5 {
			if s.rss > mLast {
				mLast, aLast = s.rss, s.anon
			}
		}
		if s.rss > mMax {
			mMax = s.rss
		}
	}
	growth := 0.0
	if m2 > 0 {
		growth = float64(mLast-m2) / float64(m2)
	}
	if m2 == 0 {
		reasons = append(reasons, "no sample in the second minute (hold at least 2 minutes)")
	} else if growth > *rssSlack {
		reasons = append(reasons, fmt.Sprintf("RSS grew %.1f%% (second minute max %d kB, last minute max %d kB)", growth*100, m2, mLast))
	}

	atomic.StoreInt32(&stopping, 1)
	summary := map[string]interface{}{
		"hold_s": int(holdSecs + 0.5), "conns": len(clients), "watchers": len(watchers),
		"leases": len(leases), "discovery_subscribers": len(regSubs), "config_subscribers": len(cfgSubs),
		"sessions":        len(sessions),
		"rss_min2_max_kb": m2, "rss_last_min_max_kb": mLast, "rss_max_kb": mMax,
		"anon_min2_kb": a2, "anon_last_min_kb": aLast, "rss_growth_pct": growth * 100,
		"fds_max": maxFds, "member_cpu_pct": srvCPU / holdSecs * 100, "driver_cpu_pct": cliCPU / holdSecs * 100,
		"writes": atomic.LoadInt64(&writes), "lease_keys": atomic.LoadInt64(&leaseKeys),
		"watch_events": gw, "watch_events_want": ww,
		"reg_events": gr, "reg_events_want": wr, "reg_ops": atomic.LoadInt64(&regOps),
		"cfg_events": gc, "cfg_events_want": wc, "publishes": atomic.LoadInt64(&pubs),
		"keepalive_responses": atomic.LoadInt64(&kaResps), "session_heartbeats": atomic.LoadInt64(&hbs),
		"compacted_expected": atomic.LoadInt64(&compacted), "errors": et,
	}
	b, _ := json.Marshal(summary)
	fmt.Printf("soak: summary %s\n", b)

	// Take everything down: streams, watchers, connections.
	cancel()
	for _, s := range regSubs {
		s.closer()
	}
	for _, s := range cfgSubs {
		s.closer()
	}
	for _, c := range clients {
		c.Close()
	}
	if len(reasons) > 0 {
		fmt.Printf("FAIL: %s\n", strings.Join(reasons, "; "))
		os.Exit(1)
	}
	fmt.Println("PASS")
}
