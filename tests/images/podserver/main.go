// Command podserver is the tests' pod image: an HTTP server that answers
// every GET with the pod's own IPv4 address (the first global address of
// its interfaces, so it needs no downward API), which is how a test proves
// which pod a request reached and that the address the API server reports
// is the one the pod really has.
//
// Wire format: GET any path -> 200, body "<ipv4>\n". Listens on :8080,
// or on the port in $PORT.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func podIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, podIP())
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
