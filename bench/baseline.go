package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// baselineMain is `bench baseline`: the bare Go program every figure is compared
// with. It moves the lines from the scenario's input to a file without parsing them:
// a TCP listener (one goroutine per connection), an HTTP server (NDJSON bodies), or a
// file that appears in a directory. Output is flushed whenever the input has nothing
// buffered, so that counting the file's lines sees every line received.
func baselineMain(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	mode := fs.String("mode", "tcp", "tcp, http or file")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (tcp, http)")
	glob := fs.String("in", "", "glob of the input file (file)")
	out := fs.String("out", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	w := bufio.NewWriterSize(f, 256<<10)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	switch *mode {
	case "tcp":
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					copyLines(c, w, &mu)
				}()
			}
		}()
		<-sig
		ln.Close()
	case "http":
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if err := copyLines(r.Body, w, &mu); err != nil {
				http.Error(rw, err.Error(), http.StatusInternalServerError)
				return
			}
			rw.WriteHeader(http.StatusOK)
		})}
		go func() { _ = srv.Serve(ln) }()
		<-sig
		_ = srv.Close()
	case "file":
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		giveUp := time.Now().Add(30 * time.Minute)
		for done := false; !done; {
			if time.Now().After(giveUp) {
				return fmt.Errorf("baseline: no file matched %s in 30 minutes", *glob)
			}
			select {
			case <-sig:
				return nil
			case <-tick.C:
			}
			m, _ := filepath.Glob(*glob)
			if len(m) == 0 {
				continue
			}
			in, err := os.Open(m[0])
			if err != nil {
				return err
			}
			err = copyLines(in, w, &mu)
			in.Close()
			if err != nil {
				return err
			}
			done = true
		}
		<-sig
	default:
		return fmt.Errorf("baseline: unknown mode %q", *mode)
	}
	mu.Lock()
	defer mu.Unlock()
	return w.Flush()
}

// copyLines copies whole lines from r to w, flushing w when r has nothing more
// buffered.
func copyLines(r io.Reader, w *bufio.Writer, mu *sync.Mutex) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			mu.Lock()
			_, werr := w.Write(line)
			if werr == nil && br.Buffered() == 0 {
				werr = w.Flush()
			}
			mu.Unlock()
			if werr != nil {
				return werr
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a line longer than the buffer: its parts were written
		}
		if err != nil {
			mu.Lock()
			ferr := w.Flush()
			mu.Unlock()
			if err == io.EOF {
				return ferr
			}
			return err
		}
	}
}
