package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/bench/corpus"
)

// sendTCP writes the whole corpus over one connection to addr (newline framing) and
// returns the connection, still open: closing it is the caller's, once the peer has
// taken every line. Every write has a deadline, so a peer that stops reading ends
// the run instead of hanging it.
func sendTCP(ctx context.Context, addr string, data []byte) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	const chunk = 256 << 10
	for off := 0; off < len(data); off += chunk {
		if err := ctx.Err(); err != nil {
			c.Close()
			return nil, err
		}
		_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		if _, err := c.Write(data[off:min(off+chunk, len(data))]); err != nil {
			c.Close()
			return nil, fmt.Errorf("tcp send at byte %d: %w", off, err)
		}
	}
	return c, nil
}

// sendHTTP POSTs the corpus as NDJSON bodies of bodyLines lines from clients
// concurrent clients (client i sends bodies i, i+clients, …). A 429 or 503 is
// retried after its Retry-After (at most 1 s) up to 100 times; any other status but
// 200 fails the run.
func sendHTTP(ctx context.Context, url string, c *corpus.Corpus, bodyLines, clients int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	bodies := (c.Lines() + bodyLines - 1) / bodyLines
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := k; b < bodies; b += clients {
				body := c.Range(b*bodyLines, min((b+1)*bodyLines, c.Lines()))
				if err := post(ctx, hc, url, body); err != nil {
					errs <- fmt.Errorf("body %d: %w", b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func post(ctx context.Context, hc *http.Client, url string, body []byte) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 100:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s == 0 {
				wait = 100 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return errors.New(resp.Status + ": " + string(bytes.TrimSpace(msg)))
		}
	}
}
