package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/internal/pipeline"
)

// PathStatus is the admin API path of the cluster status.
const PathStatus = "/v1/status"

// statusHandler answers GET /v1/status with the pipeline's Status as JSON.
func statusHandler(p *pipeline.Pipeline) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		st, err := p.Status(ctx)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})
}

func statusCmd(e *env) *cobra.Command {
	var adminURL, token string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: streams and their replicas, nodes and what they run, consumer lag",
		Long: "status asks a running node's admin listener (GET " + PathStatus + ") how the cluster looks: each stream's " +
			"replicas (leader, followers current or lagging), the nodes in the registry with their role, sources and " +
			"the sinks they run, and each consumer's lag (processing, and one per sink with the node that holds it).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv(tokenEnv)
			}
			c, err := newDLQClient(adminURL, token)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c.hc.Timeout = 20 * time.Second
			var st pipeline.Status
			if err := c.call(cmd.Context(), http.MethodGet, PathStatus, nil, &st); err != nil {
				return &exitError{code: 1, err: err}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(&st)
			}
			printStatus(e.stdout, &st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&adminURL, "admin", "http://127.0.0.1:8686", "admin listener of a running node (admin.address)")
	cmd.Flags().StringVar(&token, "token", "", "the node's admin.token (default $"+tokenEnv+")")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// printStatus writes the status as three aligned tables.
func printStatus(w io.Writer, st *pipeline.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tREPLICAS\tLEADER\tFOLLOWERS\tMESSAGES\tBYTES\tLAST SEQ")
	for _, s := range st.Streams {
		var fs []string
		for _, r := range s.Peers {
			state := "current"
			switch {
			case r.Offline:
				state = "offline"
			case !r.Current:
				state = fmt.Sprintf("lag %d", r.Lag)
			}
			fs = append(fs, fmt.Sprintf("%s (%s, seen %s ago)", r.Server, state, r.Active.Round(time.Millisecond)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", s.Name, s.Replicas, orDash(s.Leader), orDash(strings.Join(fs, ", ")),
			s.Messages, s.Bytes, s.LastSeq)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "NODE\tID\tROLE\tSOURCES\tPROCESSING\tSINKS\tNATS\tADMIN\tHEARTBEAT")
	for _, n := range st.Nodes {
		proc := "no"
		if n.Processing {
			proc = "yes"
		}
		beat := "-"
		if !n.Heartbeat.IsZero() {
			beat = now.Sub(n.Heartbeat).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, orDash(n.ID), n.Role, orDash(strings.Join(n.Sources, ",")), proc,
			orDash(strings.Join(n.Sinks, ",")), orDash(n.NATS), orDash(n.Admin), beat)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "CONSUMER\tSTREAM\tRUN BY\tLAG\tUNACKED\tREDELIVERED\tACK FLOOR")
	for _, c := range st.Consumers {
		by := "every process node"
		if c.Sink != "" {
			by = orDash(c.Holder)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", c.Name, c.Stream, by, c.Pending, c.AckPending, c.Redelivered, c.AckFloor)
	}
	_ = tw.Flush()
	for _, e := range st.Errors {
		fmt.Fprintln(w, "warning:", e)
	}
}
