package simcluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Flow is a long-lived TCP connection from one pod to another carrying a
// numbered 8-byte message every Interval, the receiver checking that
// every number arrives once and in order: a user's long-running
// connection, to see whether it survives a failure and how long it
// stalled.
type Flow struct {
	From, To *Pod

	ln       net.Listener
	conn     net.Conn
	srv      net.Conn
	stop     chan struct{}
	wg       sync.WaitGroup
	sent     atomic.Uint64
	received atomic.Uint64
	mu       sync.Mutex
	last     time.Time     // last arrival
	maxGap   time.Duration // longest time between two arrivals
	gapEnd   time.Time     // when it ended
	err      error         // first error on either end
}

// FlowStats is what a flow saw.
type FlowStats struct {
	Sent, Received uint64
	MaxGap         time.Duration
	MaxGapEnd      time.Time // when the longest stall ended
	Err            error
}

func (s FlowStats) String() string {
	return fmt.Sprintf("%d sent, %d received in order, longest stall %s (ended %s), error %v", s.Sent, s.Received, s.MaxGap.Round(time.Millisecond), s.MaxGapEnd.Format("15:04:05.000"), s.Err)
}

var flowPort atomic.Int32

// StartFlow opens a flow from pod from to pod to (a new port each time).
func StartFlow(from, to *Pod, interval time.Duration) (*Flow, error) {
	port := 7000 + int(flowPort.Add(1))
	f := &Flow{From: from, To: to, stop: make(chan struct{})}
	if err := to.Do(func() (err error) { f.ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); return err }); err != nil {
		return nil, err
	}
	if err := from.Do(func() (err error) {
		f.conn, err = net.DialTimeout("tcp", net.JoinHostPort(to.IP.String(), fmt.Sprint(port)), 5*time.Second)
		return err
	}); err != nil {
		f.ln.Close()
		return nil, fmt.Errorf("flow %s -> %s: %w", from, to, err)
	}
	srv, err := f.ln.Accept()
	if err != nil {
		f.conn.Close()
		f.ln.Close()
		return nil, err
	}
	f.srv, f.last = srv, time.Now()
	f.wg.Add(2)
	go f.send(interval)
	go f.receive(srv)
	return f, nil
}

func (f *Flow) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *Flow) send(interval time.Duration) {
	defer f.wg.Done()
	defer f.conn.(*net.TCPConn).CloseWrite()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var msg [8]byte
	for n := uint64(1); ; n++ {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		binary.BigEndian.PutUint64(msg[:], n)
		// A write only blocks when the socket buffer is full: minutes
		// of outage at this rate.
		_ = f.conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		if _, err := f.conn.Write(msg[:]); err != nil {
			f.fail(fmt.Errorf("send: %w", err))
			return
		}
		f.sent.Store(n)
	}
}

func (f *Flow) receive(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	var msg [8]byte
	for want := uint64(1); ; want++ {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Minute))
		if _, err := io.ReadFull(c, msg[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				f.fail(fmt.Errorf("receive: %w", err))
			}
			return
		}
		if got := binary.BigEndian.Uint64(msg[:]); got != want {
			f.fail(fmt.Errorf("receive: message %d where %d was due", got, want))
			return
		}
		now := time.Now()
		f.mu.Lock()
		if gap := now.Sub(f.last); gap > f.maxGap {
			f.maxGap, f.gapEnd = gap, now
		}
		f.last = now
		f.mu.Unlock()
		f.received.Store(want)
	}
}

// Stats reports the flow so far.
func (f *Flow) Stats() FlowStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FlowStats{Sent: f.sent.Load(), Received: f.received.Load(), MaxGap: f.maxGap, MaxGapEnd: f.gapEnd, Err: f.err}
}

// Stop ends the flow, waiting up to timeout for every message sent to
// arrive, and reports it.
func (f *Flow) Stop(timeout time.Duration) FlowStats {
	close(f.stop)
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		f.fail(fmt.Errorf("not every message arrived within %s of the end", timeout))
		f.conn.Close()
		f.srv.Close()
		<-done
	}
	f.conn.Close()
	f.ln.Close()
	return f.Stats()
}
