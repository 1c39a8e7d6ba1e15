package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/ipam"
)

const maxBody = 1 << 20

// handler serves SpiderPool's agent API from an allocator.
type handler struct {
	alloc  *ipam.Allocator
	counts *Counts // may be nil
}

func newMux(h *handler) *http.ServeMux {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	mux.HandleFunc("GET /v1/ipam/healthy", ok)
	mux.HandleFunc("GET /v1/runtime/startup", ok)
	mux.HandleFunc("GET /v1/runtime/readiness", ok)
	mux.HandleFunc("GET /v1/runtime/liveness", ok)
	mux.HandleFunc("POST /v1/ipam/ip", h.add)
	mux.HandleFunc("DELETE /v1/ipam/ip", h.del)
	mux.HandleFunc("DELETE /v1/ipam/ips", h.batchDel)
	// EdgeLink's own, read-only: what the module holds (for the CLI).
	mux.HandleFunc("GET /v1/edgelink/leases", h.leases)
	mux.HandleFunc("GET /v1/edgelink/pools", h.pools)
	notImplemented := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, fmt.Sprintf("%s %s is not implemented by EdgeLink's ipam module", r.Method, r.URL.Path))
	}
	mux.HandleFunc("POST /v1/ipam/ips", notImplemented)
	mux.HandleFunc("/v1/workloadendpoint", notImplemented)
	mux.HandleFunc("/v1/coordinator/config", notImplemented)
	known := map[string]bool{"/v1/ipam/healthy": true, "/v1/edgelink/leases": true, "/v1/edgelink/pools": true, "/v1/ipam/ip": true, "/v1/ipam/ips": true,
		"/v1/runtime/startup": true, "/v1/runtime/readiness": true, "/v1/runtime/liveness": true}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if known[r.URL.Path] {
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (h *handler) add(w http.ResponseWriter, r *http.Request) {
	var args IpamAddArgs
	if !decode(w, r, &args) {
		return
	}
	req, err := args.toRequest()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	lease, err := h.alloc.Allocate(req)
	if err != nil {
		logFailure("allocate", err, "pod", req.PodNamespace+"/"+req.PodName, "uid", req.PodUID)
		h.counts.allocFailed(err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.counts.allocated()
	klog.V(2).InfoS("Allocated", "pod", req.PodNamespace+"/"+req.PodName, "uid", req.PodUID, "ifName", req.IfName, "ips", lease.IPs)
	writeJSON(w, http.StatusOK, AddResponse(lease))
}

func (h *handler) del(w http.ResponseWriter, r *http.Request) {
	var args IpamDelArgs
	if !decode(w, r, &args) {
		return
	}
	if err := requireFields(map[string]*string{"containerID": args.ContainerID, "ifName": args.IfName,
		"podNamespace": args.PodNamespace, "podName": args.PodName, "podUID": args.PodUID}); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	freed, err := h.alloc.Release(*args.PodUID, *args.IfName, *args.ContainerID)
	if err != nil {
		logFailure("release", err, "pod", *args.PodNamespace+"/"+*args.PodName, "uid", *args.PodUID)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.counts.released(freed)
	klog.V(2).InfoS("Released", "pod", *args.PodNamespace+"/"+*args.PodName, "uid", *args.PodUID, "ifName", *args.IfName, "freed", freed)
	w.WriteHeader(http.StatusOK)
}

func (h *handler) batchDel(w http.ResponseWriter, r *http.Request) {
	var args IpamBatchDelArgs
	if !decode(w, r, &args) {
		return
	}
	if err := requireFields(map[string]*string{"containerID": args.ContainerID,
		"podNamespace": args.PodNamespace, "podName": args.PodName, "podUID": args.PodUID}); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n, err := h.alloc.ReleasePod(*args.PodUID, *args.ContainerID)
	if err != nil {
		logFailure("release pod", err, "uid", *args.PodUID)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.counts.releasedN(n)
	klog.V(2).InfoS("Released pod", "pod", *args.PodNamespace+"/"+*args.PodName, "uid", *args.PodUID, "leases", n)
	w.WriteHeader(http.StatusOK)
}

func (h *handler) leases(w http.ResponseWriter, _ *http.Request) {
	leases, err := h.alloc.Leases()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if leases == nil {
		leases = []ipam.Lease{}
	}
	writeJSON(w, http.StatusOK, leases)
}

func (h *handler) pools(w http.ResponseWriter, _ *http.Request) {
	usage, err := h.alloc.Usage()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	errs := map[string]string{}
	for name, err := range h.alloc.View().PoolErrors {
		errs[name] = err.Error()
	}
	writeJSON(w, http.StatusOK, map[string]any{"pools": usage, "invalid": errs})
}

func (a *IpamAddArgs) toRequest() (*ipam.AddRequest, error) {
	if err := requireFields(map[string]*string{"containerID": a.ContainerID, "ifName": a.IfName, "netNamespace": a.NetNamespace,
		"podNamespace": a.PodNamespace, "podName": a.PodName, "podUID": a.PodUID}); err != nil {
		return nil, err
	}
	req := &ipam.AddRequest{
		ContainerID: *a.ContainerID, IfName: *a.IfName, NetNS: *a.NetNamespace,
		PodNamespace: *a.PodNamespace, PodName: *a.PodName, PodUID: *a.PodUID,
		DefaultIPv4Pools: a.DefaultIPV4IPPool, DefaultIPv6Pools: a.DefaultIPV6IPPool, CleanGateway: a.CleanGateway,
	}
	return req, req.Validate()
}

// requireFields names the first missing field, in SpiderPool's spelling.
func requireFields(fields map[string]*string) error {
	for _, name := range []string{"containerID", "ifName", "netNamespace", "podNamespace", "podName", "podUID"} {
		if v, listed := fields[name]; listed && (v == nil || *v == "") {
			return fmt.Errorf("%w: %s is required", ipam.ErrBadRequest, name)
		}
	}
	return nil
}

// AddResponse renders a lease as SpiderPool's IpamAddResponse.
func AddResponse(l *ipam.Lease) *IpamAddResponse {
	resp := &IpamAddResponse{Ips: []*IPConfig{}, Routes: []*Route{}}
	for _, ip := range l.IPs {
		addr, nic, version := ip.Address.String(), l.IfName, int64(ip.Version)
		resp.Ips = append(resp.Ips, &IPConfig{Address: &addr, Gateway: ip.Gateway, IPPool: ip.Pool, Nic: &nic, Version: &version, Vlan: ip.Vlan})
	}
	for _, rt := range l.Routes {
		dst, gw, ifName := rt.Dst, rt.Gw, l.IfName
		resp.Routes = append(resp.Routes, &Route{Dst: &dst, Gw: &gw, IfName: &ifName})
	}
	return resp
}

// decodeBody parses a JSON request body of at most maxBody bytes into v.
func decodeBody(body io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading body: %v", ipam.ErrBadRequest, err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("%w: body larger than %d bytes", ipam.ErrBadRequest, maxBody)
	}
	if err := json.Unmarshal(data, v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("%w: field %s: got JSON %s, want %s", ipam.ErrBadRequest, typ.Field, typ.Value, typ.Type)
		}
		return fmt.Errorf("%w: body is not JSON: %v", ipam.ErrBadRequest, err)
	}
	return nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeBody(r.Body, v); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return false
	}
	return true
}

// writeError answers with SpiderPool's Error model: a JSON string.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func logFailure(op string, err error, kv ...any) {
	if ipam.IsClientError(err) {
		klog.V(1).InfoS("IPAM request refused", append([]any{"op", op, "err", err}, kv...)...)
		return
	}
	klog.ErrorS(err, "IPAM request failed", append([]any{"op", op}, kv...)...)
}
