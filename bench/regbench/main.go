// regbench - the load driver of bench/registry.sh: Cairn's registry and
// config center against the same patterns done by hand on etcd 3.4.
//
// Built by bench/registry.sh in GOPATH mode against Debian's packaged Go
// sources (go.etcd.io/etcd/clientv3 from golang-etcd-server-dev, gorilla
// websocket), offline. One run = one mode on one server kind; it prints one
// JSON object on stdout (diagnostics on stderr):
//
//	reg   registrations/s. cairn: PUT /api/v1/registry/<ns>/<svc>/<id>,
//	      -pattern session (one session per client, created before the
//	      clock starts) or ttl (every PUT makes its own lease), one
//	      keep-alive HTTP/1.1 connection per client. etcd: the same by
//	      hand over gRPC: ttl = LeaseGrant + Put with that lease,
//	      session = one lease per client, Put with it.
//	hb    heartbeats/s for -n instances, each with its own session/lease
//	      (registered first, not timed). -api http: POST
//	      /api/v1/sessions/<id>/keepalive over -conns keep-alive
//	      connections; -api grpc: LeaseKeepAlive streams (-conns
//	      connections x -clients streams each, -window requests in
//	      flight per stream), cycling over the leases.
//	push  -n subscribers of one service (cairn: WebSocket
//	      /api/v1/watch/registry/<ns>/<svc>; etcd: clientv3 watchers on
//	      the service prefix over -conns connections), then -rounds
//	      registrations -interval-ms apart; latency from just before the
//	      write is sent to each subscriber's receipt.
//	cfg   -n subscribers of one config spread over -ep members (cairn:
//	      WebSocket /api/v1/watch/config/..., each acks at once; etcd:
//	      watchers on the config's key), then -rounds publishes; latency
//	      to receipt and (cairn) to the ack being sent; cairn's publish
//	      uses ?wait_acks=1 so its answer time is "every subscriber of
//	      the publishing member acked".
//
// Server CPU is utime+stime of -pids from /proc around the timed phase
// only; client CPU is this process's getrusage over the same phase.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

var (
	mode     = flag.String("mode", "reg", "reg|hb|push|cfg")
	kind     = flag.String("kind", "cairn", "cairn|etcd")
	eps      = flag.String("ep", "127.0.0.1:2379", "host:port[,host:port...]")
	clients  = flag.Int("clients", 50, "concurrent clients (reg), streams per conn (hb grpc)")
	conns    = flag.Int("conns", 10, "connections")
	n        = flag.Int("n", 1000, "instances (hb) or subscribers (push, cfg)")
	rounds   = flag.Int("rounds", 20, "registrations (push) or publishes (cfg)")
	interval = flag.Int("interval-ms", 200, "time between registrations/publishes")
	dur      = flag.Float64("duration", 5, "seconds of the timed phase (reg, hb)")
	pattern  = flag.String("pattern", "session", "reg: session|ttl")
	api      = flag.String("api", "http", "hb on cairn: http|grpc")
	window   = flag.Int("window", 16, "hb grpc: requests in flight per stream")
	pidsArg  = flag.String("pids", "", "server PIDs for CPU")
	svcName  = flag.String("svc", "svc", "service (or config) name")
	perSock  = flag.Int("per-socket", 1, "push, cfg on cairn: subscriptions per WebSocket; over 1 they share /api/v1/stream sockets (as etcd's watchers share -conns connections)")
	waitAcks = flag.Bool("wait-acks", false, "cfg on cairn: publish with ?wait_acks=1 and time the PUT until every ack is in")
)

var endpoints []string

func main() {
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	endpoints = strings.Split(*eps, ",")
	var out map[string]interface{}
	switch *mode {
	case "reg":
		out = runReg()
	case "hb":
		out = runHb()
	case "push":
		out = runPush()
	case "cfg":
		out = runCfg()
	default:
		log.Fatalf("unknown mode %s", *mode)
	}
	out["mode"], out["kind"] = *mode, *kind
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

// ---------------------------------------------------------------- measuring

var clkTck = 100.0 // getconf CLK_TCK on Linux

func serverTicks() int64 {
	var sum int64
	for _, p := range strings.Split(*pidsArg, ",") {
		if p == "" {
			continue
		}
		b, err := ioutil.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + st
	}
	return sum
}

func rssKB(pid string) int64 {
	b, _ := ioutil.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

type meter struct {
	t0   time.Time
	s0   int64
	c0   float64
	Secs float64
	Srv  float64 // server CPU s
	Cli  float64 // client CPU s
}

func startMeter() *meter {
	return &meter{t0: time.Now(), s0: serverTicks(), c0: selfCPU()}
}

func (m *meter) stop() {
	m.Secs = time.Since(m.t0).Seconds()
	m.Srv = float64(serverTicks()-m.s0) / clkTck
	m.Cli = selfCPU() - m.c0
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return -1
	}
	i := int(p/100*float64(len(v))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(v) {
		i = len(v) - 1
	}
	return v[i]
}

// lat summarises latencies in ms.
func lat(v []float64) map[string]interface{} {
	sort.Float64s(v)
	m := map[string]interface{}{"count": len(v)}
	if len(v) > 0 {
		m["p50_ms"] = pct(v, 50)
		m["p90_ms"] = pct(v, 90)
		m["p99_ms"] = pct(v, 99)
		m["max_ms"] = v[len(v)-1]
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// ------------------------------------------------------------------- clients

func httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 4, MaxConnsPerHost: 1, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
}

// call does one request on c; returns the status and the body.
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

func etcdClient(ep string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep},
		DialTimeout: 10 * time.Second})
	if err != nil {
		log.Fatalf("etcd client %s: %v", ep, err)
	}
	return c
}

func etcdClients(k int) []*clientv3.Client {
	cs := make([]*clientv3.Client, k)
	for i := range cs {
		cs[i] = etcdClient(endpoints[i%len(endpoints)])
	}
	return cs
}

// doc is the instance document written on etcd by hand: the same fields
// Cairn stores (about the same bytes).
func doc(ns, svc, id string, lease int64) string {
	return fmt.Sprintf(`{"id":%q,"namespace":%q,"service":%q,"addr":"10.0.0.1:8080","host":"10.0.0.1","port":8080,"weight":100,"zone":"","version":"","labels":{},"meta":{},"status":"up","health":"passing","session":"%x","registered_at":%q}`,
		id, ns, svc, lease, time.Now().UTC().Format(time.RFC3339))
}

func regBody(session string, ttl int) string {
	if session != "" {
		return `{"addr":"10.0.0.1:8080","session":"` + session + `"}`
	}
	return `{"addr":"10.0.0.1:8080","ttl":` + strconv.Itoa(ttl) + `}`
}

// ---------------------------------------------------------------------- reg

func runReg() map[string]interface{} {
	var ok, errs int64
	var firstErr atomic.Value
	lats := make([][]float64, *clients)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	var deadline time.Time
	var ecs []*clientv3.Client
	if *kind == "etcd" {
		ecs = etcdClients(*conns)
	}
	fail := func(e string) {
		atomic.AddInt64(&errs, 1)
		firstErr.CompareAndSwap(nil, e)
	}
	for c := 0; c < *clients; c++ {
		ready.Add(1)
		done.Add(1)
		go func(c int) {
			defer done.Done()
			var hc *http.Client
			var session string
			var lease clientv3.LeaseID
			base := "http://" + endpoints[c%len(endpoints)] + "/api/v1/"
			if *kind == "cairn" {
				hc = httpClient()
				if *pattern == "session" {
					st, b, err := call(hc, "POST", base+"sessions", `{"ttl":600}`)
					var r struct{ Session string }
					json.Unmarshal(b, &r)
					if err != nil || st != 200 {
						log.Fatalf("session: %d %v %s", st, err, b)
					}
					session = r.Session
				} else {
					call(hc, "GET", "http://"+endpoints[c%len(endpoints)]+"/health", "")
				}
			} else if *pattern == "session" {
				g, err := ecs[c%len(ecs)].Grant(context.Background(), 600)
				if err != nil {
					log.Fatalf("grant: %v", err)
				}
				lease = g.ID
			}
			ready.Done()
			<-start
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("c%d-%d", c, i)
				t := time.Now()
				if *kind == "cairn" {
					st, b, err := call(hc, "PUT", base+"registry/bench/"+*svcName+"/"+id,
						regBody(session, 600))
					if err != nil || st != 200 {
						fail(fmt.Sprintf("%d %v %.100s", st, err, b))
						continue
					}
				} else {
					cli := ecs[c%len(ecs)]
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					l := lease
					if *pattern == "ttl" {
						g, err := cli.Grant(ctx, 600)
						if err != nil {
							cancel()
							fail(err.Error())
							continue
						}
						l = g.ID
					}
					_, err := cli.Put(ctx, "/registry/bench/services/"+*svcName+"/"+id,
						doc("bench", *svcName, id, int64(l)), clientv3.WithLease(l))
					cancel()
					if err != nil {
						fail(err.Error())
						continue
					}
				}
				lats[c] = append(lats[c], ms(time.Since(t)))
				atomic.AddInt64(&ok, 1)
			}
		}(c)
	}
	ready.Wait()
	m := startMeter()
	deadline = time.Now().Add(time.Duration(*dur * float64(time.Second)))
	close(start)
	done.Wait()
	m.stop()
	var all []float64
	for _, l := range lats {
		all = append(all, l...)
	}
	out := map[string]interface{}{"pattern": *pattern, "clients": *clients,
		"ok": ok, "errors": errs, "secs": m.Secs, "per_s": float64(ok) / m.Secs,
		"server_cpu_s": m.Srv, "client_cpu_s": m.Cli, "lat": lat(all)}
	if ok > 0 {
		out["server_cpu_us_per_op"] = m.Srv * 1e6 / float64(ok)
	}
	if e := firstErr.Load(); e != nil {
		out["first_error"] = e
	}
	return out
}

// ----------------------------------------------------------------------- hb

// register makes *n instances, each with its own session/lease; returns
// the lease ids (not timed).
func register(ecs []*clientv3.Client) []int64 {
	ids := make([]int64, *n)
	var next int64 = -1
	var wg sync.WaitGroup
	for c := 0; c < 50; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			hc := httpClient()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= *n {
					return
				}
				id := "h" + strconv.Itoa(i)
				if *kind == "cairn" {
					ep := endpoints[i%len(endpoints)]
					st, b, err := call(hc, "PUT", "http://"+ep+"/api/v1/registry/bench/"+
						*svcName+"/"+id, regBody("", 600))
					var r struct{ Session string }
					json.Unmarshal(b, &r)
					if err != nil || st != 200 {
						log.Fatalf("register: %d %v %s", st, err, b)
					}
					ids[i], _ = strconv.ParseInt(r.Session, 16, 64)
				} else {
					cli := ecs[i%len(ecs)]
					g, err := cli.Grant(context.Background(), 600)
					if err == nil {
						_, err = cli.Put(context.Background(), "/registry/bench/services/"+
							*svcName+"/"+id, doc("bench", *svcName, id, int64(g.ID)),
							clientv3.WithLease(g.ID))
					}
					if err != nil {
						log.Fatalf("register: %v", err)
					}
					ids[i] = int64(g.ID)
				}
			}
		}(c)
	}
	wg.Wait()
	return ids
}

func runHb() map[string]interface{} {
	var ecs []*clientv3.Client
	if *kind == "etcd" || *api == "grpc" {
		ecs = etcdClients(*conns)
	}
	t0 := time.Now()
	ids := register(ecs)
	setup := time.Since(t0).Seconds()
	log.Printf("hb: %d instances registered in %.1f s", len(ids), setup)
	var ok, errs int64
	var firstErr atomic.Value
	var stop int32
	var mu sync.Mutex
	var all []float64
	var wg sync.WaitGroup
	workers := *conns
	if *api == "grpc" || *kind == "etcd" {
		workers = *conns * *clients
	}
	var m *meter
	startCh := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []int64
			for i := w; i < len(ids); i += workers {
				mine = append(mine, ids[i])
			}
			var l []float64
			if *kind == "cairn" && *api == "http" {
				hc := httpClient()
				base := "http://" + endpoints[w%len(endpoints)] + "/api/v1/sessions/"
				call(hc, "GET", "http://"+endpoints[w%len(endpoints)]+"/health", "")
				<-startCh
				for k := 0; atomic.LoadInt32(&stop) == 0; k++ {
					t := time.Now()
					st, b, err := call(hc, "POST", base+strconv.FormatInt(mine[k%len(mine)], 16)+
						"/keepalive", "")
					if err != nil || st != 200 {
						atomic.AddInt64(&errs, 1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v %.100s", st, err, b))
						continue
					}
					atomic.AddInt64(&ok, 1)
					l = append(l, ms(time.Since(t)))
				}
			} else {
				l = hbStream(ecs[w%len(ecs)], mine, startCh, &stop, &ok, &errs, &firstErr)
			}
			mu.Lock()
			all = append(all, l...)
			mu.Unlock()
		}(w)
	}
	time.Sleep(500 * time.Millisecond) // streams and connections open
	m = startMeter()
	close(startCh)
	time.Sleep(time.Duration(*dur * float64(time.Second)))
	okAt := atomic.LoadInt64(&ok)
	m.stop()
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	if *kind == "etcd" {
		*api = "grpc"
	}
	out := map[string]interface{}{"api": *api, "instances": len(ids),
		"setup_s": setup, "setup_per_s": float64(len(ids)) / setup,
		"ok": okAt, "errors": errs, "secs": m.Secs, "per_s": float64(okAt) / m.Secs,
		"server_cpu_s": m.Srv, "client_cpu_s": m.Cli, "lat": lat(all),
		"conns": *conns, "workers": workers}
	if okAt > 0 {
		out["server_cpu_us_per_op"] = m.Srv * 1e6 / float64(okAt)
	}
	if e := firstErr.Load(); e != nil {
		out["first_error"] = e
	}
	return out
}

// hbStream keeps the leases in mine alive over one LeaseKeepAlive stream,
// *window requests in flight; returns the latencies (ms).
func hbStream(cli *clientv3.Client, mine []int64, startCh chan struct{},
	stop *int32, ok, errs *int64, firstErr *atomic.Value) []float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(ctx)
	if err != nil {
		firstErr.CompareAndSwap(nil, err.Error())
		return nil
	}
	sent := make(chan time.Time, *window)
	var l []float64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			t := <-sent
			if r.TTL <= 0 {
				atomic.AddInt64(errs, 1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("lease %x not found", r.ID))
			} else {
				atomic.AddInt64(ok, 1)
			}
			l = append(l, ms(time.Since(t)))
		}
	}()
	<-startCh
	for k := 0; atomic.LoadInt32(stop) == 0; k++ {
		sent <- time.Now()
		if err := st.Send(&pb.LeaseKeepAliveRequest{ID: mine[k%len(mine)]}); err != nil {
			firstErr.CompareAndSwap(nil, err.Error())
			break
		}
	}
	// drain what is in flight, then close
	for i := 0; i < 200 && len(sent) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-recvDone
	return l
}

// ------------------------------------------------------------- subscribers

// recorder collects per-round receipt latencies of every subscriber.
type recorder struct {
	t0   []int64 // unix ns when round r's write was sent
	mu   sync.Mutex
	recv []float64
	ack  []float64
	got  []int64 // receipts per round
}

func newRecorder(k int) *recorder {
	return &recorder{t0: make([]int64, k), got: make([]int64, k)}
}

func (r *recorder) add(round int, tRecv, tAck time.Time, acked bool) {
	if round < 0 || round >= len(r.t0) {
		return
	}
	t0 := atomic.LoadInt64(&r.t0[round])
	if t0 == 0 {
		return
	}
	atomic.AddInt64(&r.got[round], 1)
	r.mu.Lock()
	r.recv = append(r.recv, float64(tRecv.UnixNano()-t0)/1e6)
	if acked {
		r.ack = append(r.ack, float64(tAck.UnixNano()-t0)/1e6)
	}
	r.mu.Unlock()
}

func (r *recorder) total() int64 {
	var s int64
	for i := range r.got {
		s += atomic.LoadInt64(&r.got[i])
	}
	return s
}

// wsDialAll opens *n WebSocket subscribers (url(i) names subscriber i's
// URL), 100 dials at a time, each waiting for its first message (the
// snapshot); then runs onMsg for every later message.
func wsDialAll(url func(i int) string, onMsg func(c *websocket.Conn, msg []byte, t time.Time)) []*websocket.Conn {
	cs := make([]*websocket.Conn, *n)
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	var fails int64
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second,
		ReadBufferSize: 4096, WriteBufferSize: 1024}
	for i := 0; i < *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			var c *websocket.Conn
			var err error
			for try := 0; try < 3; try++ {
				c, _, err = d.Dial(url(i), nil)
				if err == nil {
					_, _, err = c.ReadMessage() // the snapshot
				}
				if err == nil {
					break
				}
				if c != nil {
					c.Close()
					c = nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			<-sem
			if err != nil {
				if atomic.AddInt64(&fails, 1) <= 3 {
					log.Printf("subscriber %d: %v", i, err)
				}
				return
			}
			cs[i] = c
			go func() {
				for {
					_, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					onMsg(c, msg, time.Now())
				}
			}()
		}(i)
	}
	wg.Wait()
	if fails > 0 {
		log.Printf("%d of %d subscribers failed to connect", fails, *n)
	}
	return cs
}

// wsMuxAll opens *n subscriptions over ceil(*n / *perSock) sockets on
// /api/v1/stream (sub(i) is subscription i's subscribe request, with id
// i+1), each socket waiting for all of its snapshots; then runs onMsg for
// every later message with the message's sub.
func wsMuxAll(sub func(i int) string, onMsg func(c *websocket.Conn, sub int, msg []byte, t time.Time)) ([]*websocket.Conn, int) {
	k := *perSock
	ns := (*n + k - 1) / k
	cs := make([]*websocket.Conn, ns)
	subs := make([]int, ns)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	var fails int64
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second,
		ReadBufferSize: 65536, WriteBufferSize: 4096}
	for s := 0; s < ns; s++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(s int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := d.Dial("ws://"+endpoints[s%len(endpoints)]+"/api/v1/stream", nil)
			if err != nil {
				if atomic.AddInt64(&fails, 1) <= 3 {
					log.Printf("socket %d: %v", s, err)
				}
				return
			}
			lo, hi := s*k, (s+1)*k
			if hi > *n {
				hi = *n
			}
			for i := lo; i < hi && err == nil; i++ {
				err = c.WriteMessage(websocket.TextMessage, []byte(sub(i)))
			}
			for snaps := 0; snaps < hi-lo && err == nil; {
				var msg []byte
				_, msg, err = c.ReadMessage()
				if err == nil && bytes.Contains(msg, []byte(`"type":"snapshot"`)) {
					snaps++
				} else if err == nil && bytes.Contains(msg, []byte(`"error"`)) {
					err = fmt.Errorf("%.200s", msg)
				}
			}
			if err != nil {
				if atomic.AddInt64(&fails, 1) <= 3 {
					log.Printf("socket %d: %v", s, err)
				}
				c.Close()
				return
			}
			cs[s], subs[s] = c, hi-lo
			go func() {
				for {
					_, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					onMsg(c, field(msg, "sub"), msg, time.Now())
				}
			}()
		}(s)
	}
	wg.Wait()
	if fails > 0 {
		log.Printf("%d of %d sockets failed", fails, ns)
	}
	total := 0
	for _, v := range subs {
		total += v
	}
	return cs, total
}

// field returns the integer after `"name":` in msg (first occurrence).
func field(msg []byte, name string) int {
	i := bytes.Index(msg, []byte(`"`+name+`":`))
	if i < 0 {
		return -1
	}
	j := i + len(name) + 3
	if j < len(msg) && msg[j] == '"' {
		j++
	}
	v := 0
	k := j
	for ; k < len(msg) && msg[k] >= '0' && msg[k] <= '9'; k++ {
		v = v*10 + int(msg[k]-'0')
	}
	if k == j {
		return -1
	}
	return v
}

// roundOf: instance ids are "p<round>".
func roundOf(msg []byte) int {
	i := bytes.Index(msg, []byte(`"id":"p`))
	if i < 0 {
		return -1
	}
	v := 0
	k := i + 7
	for ; k < len(msg) && msg[k] >= '0' && msg[k] <= '9'; k++ {
		v = v*10 + int(msg[k]-'0')
	}
	return v
}

type etcdWatchers struct {
	cs      []*clientv3.Client
	cancels []context.CancelFunc
}

// etcdWatchAll opens *n watchers of key (prefix or not) over *conns
// clients spread over the endpoints, waits until each is created, then
// runs onEv for every event.
func etcdWatchAll(key string, prefix bool, onEv func(k, v []byte, t time.Time)) *etcdWatchers {
	w := &etcdWatchers{cs: etcdClients(*conns)}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	var fails int64
	for i := 0; i < *n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		w.cancels = append(w.cancels, cancel)
		opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, ctx context.Context) {
			wch := w.cs[i%len(w.cs)].Watch(ctx, key, opts...)
			first := true
			for resp := range wch {
				t := time.Now()
				if first {
					first = false
					<-sem
					wg.Done()
					if !resp.Created {
						atomic.AddInt64(&fails, 1)
					}
					continue
				}
				for _, ev := range resp.Events {
					onEv(ev.Kv.Key, ev.Kv.Value, t)
				}
			}
			if first {
				<-sem
				wg.Done()
				atomic.AddInt64(&fails, 1)
			}
		}(i, ctx)
	}
	wg.Wait()
	if fails > 0 {
		log.Printf("%d of %d watchers not created", fails, *n)
	}
	return w
}

func (w *etcdWatchers) close() {
	for _, c := range w.cancels {
		c()
	}
	for _, c := range w.cs {
		c.Close()
	}
}

// waitAll waits until want receipts are in, or 10 s after the last write.
func waitAll(rec *recorder, want int64) {
	for i := 0; i < 1000 && rec.total() < want; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

func subResult(rec *recorder, m *meter, subs int, setup float64) map[string]interface{} {
	want := int64(subs) * int64(*rounds)
	got := rec.total()
	out := map[string]interface{}{"subscribers": subs, "rounds": *rounds,
		"interval_ms": *interval, "setup_s": setup, "received": got,
		"missing": want - got, "secs": m.Secs, "server_cpu_s": m.Srv,
		"client_cpu_s": m.Cli, "recv": lat(rec.recv), "members": len(endpoints)}
	if got > 0 {
		out["server_cpu_us_per_msg"] = m.Srv * 1e6 / float64(got)
	}
	if len(rec.ack) > 0 {
		out["ack"] = lat(rec.ack)
	}
	return out
}

// --------------------------------------------------------------------- push

func runPush() map[string]interface{} {
	rec := newRecorder(*rounds)
	svc := *svcName
	t0 := time.Now()
	var subs int
	var closeAll func()
	var write func(r int) error
	if *kind == "cairn" {
		var cs []*websocket.Conn
		if *perSock > 1 {
			cs, subs = wsMuxAll(func(i int) string {
				return `{"id":` + strconv.Itoa(i+1) + `,"op":"subscribe","kind":"registry","namespace":"bench","service":"` + svc + `"}`
			}, func(c *websocket.Conn, sub int, msg []byte, t time.Time) {
				if bytes.Contains(msg, []byte(`"type":"put"`)) {
					rec.add(roundOf(msg), t, t, false)
				}
			})
		} else {
			cs = wsDialAll(func(i int) string {
				return "ws://" + endpoints[i%len(endpoints)] + "/api/v1/watch/registry/bench/" + svc
			}, func(c *websocket.Conn, msg []byte, t time.Time) {
				if bytes.Contains(msg, []byte(`"type":"put"`)) {
					rec.add(roundOf(msg), t, t, false)
				}
			})
			for _, c := range cs {
				if c != nil {
					subs++
				}
			}
		}
		hc := httpClient()
		base := "http://" + endpoints[0] + "/api/v1/"
		st, b, err := call(hc, "POST", base+"sessions", `{"ttl":600}`)
		var r struct{ Session string }
		json.Unmarshal(b, &r)
		if err != nil || st != 200 {
			log.Fatalf("session: %d %v %s", st, err, b)
		}
		write = func(k int) error {
			st, b, err := call(hc, "PUT", base+"registry/bench/"+svc+"/p"+strconv.Itoa(k),
				regBody(r.Session, 0))
			if err == nil && st != 200 {
				err = fmt.Errorf("%d %.100s", st, b)
			}
			return err
		}
		closeAll = func() {
			for _, c := range cs {
				if c != nil {
					c.Close()
				}
			}
		}
	} else {
		prefix := "/registry/bench/services/" + svc + "/"
		w := etcdWatchAll(prefix, true, func(k, v []byte, t time.Time) {
			id := k[bytes.LastIndexByte(k, '/')+1:]
			if len(id) > 1 && id[0] == 'p' {
				r, _ := strconv.Atoi(string(id[1:]))
				rec.add(r, t, t, false)
			}
		})
		subs = *n
		cli := etcdClient(endpoints[0])
		g, err := cli.Grant(context.Background(), 600)
		if err != nil {
			log.Fatalf("grant: %v", err)
		}
		write = func(k int) error {
			id := "p" + strconv.Itoa(k)
			_, err := cli.Put(context.Background(), prefix+id, doc("bench", svc, id, int64(g.ID)),
				clientv3.WithLease(g.ID))
			return err
		}
		closeAll = func() { w.close(); cli.Close() }
	}
	setup := time.Since(t0).Seconds()
	log.Printf("push: %d subscribers ready in %.1f s", subs, setup)
	var srvRSS int64
	if p := strings.Split(*pidsArg, ",")[0]; p != "" {
		srvRSS = rssKB(p)
	}
	time.Sleep(300 * time.Millisecond)
	m := startMeter()
	var werr error
	for k := 0; k < *rounds; k++ {
		atomic.StoreInt64(&rec.t0[k], time.Now().UnixNano())
		if err := write(k); err != nil && werr == nil {
			werr = err
		}
		time.Sleep(time.Duration(*interval) * time.Millisecond)
	}
	waitAll(rec, int64(subs)*int64(*rounds))
	m.stop()
	out := subResult(rec, m, subs, setup)
	out["server_rss_kb_with_subs"] = srvRSS
	if werr != nil {
		out["first_error"] = werr.Error()
	}
	closeAll()
	return out
}

// ---------------------------------------------------------------------- cfg

func runCfg() map[string]interface{} {
	rec := newRecorder(*rounds)
	name := *svcName + ".yaml"
	t0 := time.Now()
	var subs int
	var closeAll func()
	var write func(r int) (float64, error)
	var extra = map[string]interface{}{}
	if *kind == "cairn" {
		hc := httpClient()
		url := "http://" + endpoints[0] + "/api/v1/config/bench/app/" + name
		st, b, err := call(hc, "PUT", url, `{"content":"v: 0\n","format":"yaml"}`)
		if err != nil || st != 200 {
			log.Fatalf("publish v1: %d %v %s", st, err, b)
		}
		v0 := field(b, "version") // round r publishes version v0+1+r
		var ackErrs int64
		onMsg := func(c *websocket.Conn, sub int, msg []byte, t time.Time) {
			if !bytes.Contains(msg, []byte(`"type":"put"`)) {
				if bytes.Contains(msg, []byte(`"type":"error"`)) &&
					atomic.AddInt64(&ackErrs, 1) <= 3 {
					log.Printf("stream error: %.200s", msg)
				}
				return
			}
			v := field(msg, "version")
			ack := `{"ack":{"name":"` + name + `","version":` + strconv.Itoa(v) + `}}`
			if sub > 0 {
				ack = `{"op":"ack","sub":` + strconv.Itoa(sub) + `,"name":"` + name +
					`","version":` + strconv.Itoa(v) + `}`
			}
			err := c.WriteMessage(websocket.TextMessage, []byte(ack))
			rec.add(v-v0-1, t, time.Now(), err == nil)
		}
		var cs []*websocket.Conn
		if *perSock > 1 {
			cs, subs = wsMuxAll(func(i int) string {
				return `{"id":` + strconv.Itoa(i+1) + `,"op":"subscribe","kind":"config","namespace":"bench","app":"app","name":"` +
					name + `","client_id":"s` + strconv.Itoa(i) + `"}`
			}, onMsg)
		} else {
			cs = wsDialAll(func(i int) string {
				return "ws://" + endpoints[i%len(endpoints)] + "/api/v1/watch/config/bench/app/" +
					name + "?client_id=s" + strconv.Itoa(i)
			}, func(c *websocket.Conn, msg []byte, t time.Time) { onMsg(c, 0, msg, t) })
			for _, c := range cs {
				if c != nil {
					subs++
				}
			}
		}
		var allAck []float64
		write = func(k int) (float64, error) {
			t := time.Now()
			q := ""
			if *waitAcks {
				q = "?wait_acks=1&timeout=30"
			}
			st, b, err := call(hc, "PUT", url+q,
				`{"content":"v: `+strconv.Itoa(k+1)+`\n","format":"yaml"}`)
			d := ms(time.Since(t))
			if err == nil && st != 200 {
				err = fmt.Errorf("%d %.200s", st, b)
			}
			if err == nil && *waitAcks {
				allAck = append(allAck, d)
				if bytes.Contains(b, []byte(`"timed_out":true`)) {
					extra["wait_acks_timed_out"] = string(b)
				}
			}
			return d, err
		}
		closeAll = func() {
			if *waitAcks {
				extra["all_acked_on_publisher"] = lat(allAck)
			}
			extra["ack_stream_errors"] = ackErrs
			for _, c := range cs {
				if c != nil {
					c.Close()
				}
			}
		}
	} else {
		key := "/config/bench/app/" + name
		w := etcdWatchAll(key, false, func(k, v []byte, t time.Time) {
			r, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(v), "v: ")))
			rec.add(r-1, t, t, false)
		})
		subs = *n
		cli := etcdClient(endpoints[0])
		write = func(k int) (float64, error) {
			_, err := cli.Put(context.Background(), key, "v: "+strconv.Itoa(k+1)+"\n")
			return 0, err
		}
		closeAll = func() { w.close(); cli.Close() }
	}
	setup := time.Since(t0).Seconds()
	log.Printf("cfg: %d subscribers ready in %.1f s", subs, setup)
	hist0 := ackHist()
	time.Sleep(300 * time.Millisecond)
	m := startMeter()
	var werr error
	for k := 0; k < *rounds; k++ {
		atomic.StoreInt64(&rec.t0[k], time.Now().UnixNano())
		d, err := write(k)
		if err != nil && werr == nil {
			werr = err
		}
		if left := time.Duration(*interval)*time.Millisecond - time.Duration(d*1e6); left > 0 {
			time.Sleep(left)
		}
	}
	waitAll(rec, int64(subs)*int64(*rounds))
	m.stop()
	out := subResult(rec, m, subs, setup)
	if *kind == "cairn" {
		out["server_hist"] = histDelta(hist0, ackHist())
	}
	closeAll()
	for k, v := range extra {
		out[k] = v
	}
	if werr != nil {
		out["first_error"] = werr.Error()
	}
	return out
}

// ackHist sums cairn_config_publish_to_ack_seconds buckets over members.
func ackHist() map[string]float64 {
	h := map[string]float64{}
	hc := httpClient()
	for _, ep := range endpoints {
		_, b, err := call(hc, "GET", "http://"+ep+"/metrics", "")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "cairn_config_publish_to_ack_seconds_bucket{le=\"") {
				continue
			}
			rest := l[len("cairn_config_publish_to_ack_seconds_bucket{le=\""):]
			q := strings.Index(rest, "\"")
			f := strings.Fields(rest[q:])
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			h[rest[:q]] += v
		}
	}
	hc.CloseIdleConnections()
	return h
}

// histDelta: acks counted by the server in the run, and the share of them
// within 100 ms (the server's own publish-to-ack clock).
func histDelta(a, b map[string]float64) map[string]interface{} {
	tot := b["+Inf"] - a["+Inf"]
	in := b["0.1"] - a["0.1"]
	out := map[string]interface{}{"acks": tot}
	if tot > 0 {
		out["within_100ms"] = in / tot
		for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"} {
			if (b[le]-a[le])/tot >= 0.5 && out["p50_le_s"] == nil {
				out["p50_le_s"] = le
			}
			if (b[le]-a[le])/tot >= 0.99 && out["p99_le_s"] == nil {
				out["p99_le_s"] = le
			}
		}
	}
	return out
}

var _ = io.EOF
