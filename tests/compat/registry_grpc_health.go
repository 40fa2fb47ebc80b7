// registry_grpc_health.go - a stock grpc-go health server for
// registry_grpc_health.test: grpc-go's own health service
// (google.golang.org/grpc/health, Debian's golang-google-grpc-dev).
//
//	registry_grpc_health ADDR CTL [CERT KEY]
//
// Listens on ADDR (host:port; port 0 picks one), prints the address it got
// on the first line of stdout, and serves grpc.health.v1.Health (over TLS
// with CERT and KEY: grpc-go's credentials, ALPN h2) with the server's own
// status ("") SERVING. Every 50 ms it reads the file CTL:
// each line "NAME STATUS" (NAME "-" for the server's own, STATUS one of
// SERVING, NOT_SERVING, UNKNOWN) sets that status; a service never named
// stays unknown to the server, which answers NOT_FOUND for it. Runs until
// killed.
package main

import (
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	hpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if len(os.Args) != 3 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: registry_grpc_health ADDR CTL [CERT KEY]")
		os.Exit(2)
	}
	var opts []grpc.ServerOption
	if len(os.Args) == 5 {
		creds, err := credentials.NewServerTLSFromFile(os.Args[3], os.Args[4])
		if err != nil {
			fmt.Fprintln(os.Stderr, "tls:", err)
			os.Exit(1)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	lis, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println(lis.Addr().String())
	s := grpc.NewServer(opts...)
	h := health.NewServer()
	hpb.RegisterHealthServer(s, h)
	go func() {
		last := ""
		for {
			b, _ := ioutil.ReadFile(os.Args[2])
			if string(b) != last {
				last = string(b)
				for _, line := range strings.Split(last, "\n") {
					f := strings.Fields(line)
					if len(f) != 2 {
						continue
					}
					name := f[0]
					if name == "-" {
						name = ""
					}
					st, ok := hpb.HealthCheckResponse_ServingStatus_value[f[1]]
					if ok {
						h.SetServingStatus(name, hpb.HealthCheckResponse_ServingStatus(st))
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
