package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vigil-sec/vigil/internal/admin"
	"github.com/vigil-sec/vigil/internal/dlq"
)

// dlqFlags are the options every `vigil dlq` subcommand shares.
type dlqFlags struct {
	admin  string
	token  string
	stage  string
	source string
	since  string
}

// tokenEnv holds the admin token when --token is not given; a variable, unlike a
// flag, does not show in the process list.
const tokenEnv = "VIGIL_ADMIN_TOKEN"

// client returns the API client the flags describe.
func (f *dlqFlags) client() (*dlqClient, error) {
	token := f.token
	if token == "" {
		token = os.Getenv(tokenEnv)
	}
	return newDLQClient(f.admin, token)
}

// query turns the filter flags into API query parameters. since is resolved here,
// once, so that every chunk of a replay selects the same letters.
func (f *dlqFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	if f.stage != "" {
		q.Set("stage", f.stage)
	}
	if f.source != "" {
		q.Set("source", f.source)
	}
	if f.since != "" {
		d, err := dlq.ParseSince(f.since)
		if err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
		q.Set("after", now.Add(-d).UTC().Format(time.RFC3339Nano))
	}
	return q, nil
}

func dlqCmd(e *env) *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show and replay dead letters of a running node",
		Long: "dlq works on the dead-letter stream of a running Vigil node through its admin listener " +
			"(the embedded store can be opened by one process only). Dead letters are records a stage " +
			"rejected, kept with the stage, the reason and the original bytes; replay feeds them back into " +
			"the pipeline once the parser, config or schema is fixed. A node with admin.token needs it: " +
			"--token or the " + tokenEnv + " environment variable.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.admin, "admin", "http://127.0.0.1:8686", "admin listener of the running node (admin.address)")
	pf.StringVar(&f.token, "token", "", "the node's admin.token (default $"+tokenEnv+", which keeps it out of the process list)")
	pf.StringVar(&f.stage, "stage", "", "only letters of this stage (decode, parse, validate, intake, sink)")
	pf.StringVar(&f.source, "source", "", "only letters of this source")
	pf.StringVar(&f.since, "since", "", "only letters dead-lettered within this duration (30m, 12h, 7d)")
	cmd.AddCommand(dlqListCmd(e, f), dlqShowCmd(e, f), dlqReplayCmd(e, f))
	return cmd
}

func dlqListCmd(e *env, f *dlqFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Count dead letters by stage, source and reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(time.Now())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := f.client()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var sum dlq.Summary
			if err := c.call(cmd.Context(), http.MethodGet, dlq.PathSummary, q, &sum); err != nil {
				return &exitError{code: 1, err: err}
			}
			printSummary(e.stdout, &sum)
			return nil
		},
	}
}

// printSummary writes the summary as an aligned table.
func printSummary(w io.Writer, sum *dlq.Summary) {
	if sum.Total == 0 {
		fmt.Fprintln(w, "No dead letters.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSOURCE\tREASON\tCOUNT\tLAST")
	for _, g := range sum.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", g.Stage, orDash(g.Source), oneLine(g.Reason), g.Count,
			g.Last.Local().Format(time.DateTime))
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t%d\t\n", sum.Total)
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a reason from breaking the table.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func dlqShowCmd(e *env, f *dlqFlags) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print dead letters as JSON lines, oldest first",
		Long: "show prints one JSON object per dead letter: sequence, stage, reason, source, dataset, format, " +
			"time (received), dead_lettered, origin, and original (the rejected bytes as text, or base64 with " +
			"original_base64 set when they are not valid UTF-8).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--limit: want at least 1, got %d", limit)}
			}
			q, err := f.query(time.Now())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := f.client()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			// Each line is checked to be an entry, so that what reaches stdout is
			// always well-formed JSON lines.
			out := bufio.NewWriter(e.stdout)
			defer out.Flush()
			// The node answers a page at a time; the next starts after the last
			// letter printed.
			for left := limit; left > 0; {
				page := min(left, showPage)
				q.Set("limit", strconv.Itoa(page))
				got, last, lastIndex := 0, uint64(0), 0
				err = c.stream(cmd.Context(), dlq.PathEntries, q, func(line []byte) error {
					var entry dlq.Entry
					if err := json.Unmarshal(line, &entry); err != nil {
						return fmt.Errorf("admin API %s: bad entry: %w", dlq.PathEntries, err)
					}
					got, last, lastIndex = got+1, entry.Sequence, entry.Index
					out.Write(line)
					return out.WriteByte('\n')
				})
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				if got < page {
					break
				}
				left -= got
				// Letters are stored in batches: go on after the last one printed.
				q.Set("from", strconv.FormatUint(last, 10))
				q.Set("from_index", strconv.Itoa(lastIndex+1))
			}
			return out.Flush()
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "most letters to print")
	return cmd
}

func dlqReplayCmd(e *env, f *dlqFlags) *cobra.Command {
	var chunk int
	var format string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Feed dead letters back into the pipeline, then remove them from the DLQ",
		Long: "replay stores each selected letter's original record in the intake stream again (ECS documents " +
			"a destination rejected go back to the events stream, to every sink of their dataset), and removes " +
			"the letter only once the copy is stored. Records that fail again are dead-lettered again; they are " +
			"not replayed a second time in the same run. It is safe to interrupt and run again: a copy already " +
			"stored is recognised (within buffer.duplicate_window) and not stored twice. Letters that keep their " +
			"origin get the event IDs they would have had. Use --format to re-parse intake records with another " +
			"format, e.g. after changing the source's format in the config.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if chunk < 1 || chunk > dlq.MaxLimit {
				return &exitError{code: 2, err: fmt.Errorf("--chunk: want 1 to %d, got %d", dlq.MaxLimit, chunk)}
			}
			q, err := f.query(time.Now())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := f.client()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			// An interrupt ends the run between chunks; the chunk in flight finishes
			// on the node either way. A second interrupt kills the command at once.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); stop() }()
			return runReplay(ctx, e, c, q, chunk, format)
		},
	}
	cmd.Flags().IntVar(&chunk, "chunk", 500, "letters per request to the node")
	cmd.Flags().StringVar(&format, "format", "", "parse replayed intake records with this format instead of the stored one")
	return cmd
}

// runReplay drives replay chunks until the letters present at the start are done.
func runReplay(ctx context.Context, e *env, c *dlqClient, q url.Values, chunk int, format string) error {
	var sum dlq.Summary
	if err := c.call(context.Background(), http.MethodGet, dlq.PathSummary, q, &sum); err != nil {
		return &exitError{code: 1, err: err}
	}
	if sum.Total == 0 {
		fmt.Fprintln(e.stdout, "No dead letters to replay.")
		return nil
	}
	var bar *progressbar.ProgressBar
	if isTerminal(e.stderr) {
		bar = progressbar.NewOptions(sum.Total, progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("replaying"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("letters"), progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.stderr) }))
	}
	q.Set("limit", strconv.Itoa(chunk))
	q.Set("up_to", strconv.FormatUint(sum.LastSeq, 10))
	if format != "" {
		q.Set("format", format)
	}
	var total dlq.ReplayResult
	var skips []string
	var runErr error
	// Every chunk that is not the last replays or skips at least one letter, so
	// Total+1 requests always suffice.
	for range sum.Total + 1 {
		if ctx.Err() != nil {
			runErr = errors.New("interrupted; run the same command again to continue (nothing is stored twice)")
			break
		}
		var res dlq.ReplayResult
		// Not ctx: a chunk is let finish, so its outcome is reported.
		err := c.call(context.Background(), http.MethodPost, dlq.PathReplay, q, &res)
		total.Replayed += res.Replayed
		total.Duplicates += res.Duplicates
		total.Skipped += res.Skipped
		skips = append(skips, res.Skips...)
		if bar != nil {
			_ = bar.Add(res.Replayed + res.Skipped)
		}
		if err != nil {
			runErr = err
			break
		}
		if res.Done {
			break
		}
		q.Set("from", strconv.FormatUint(res.Next, 10))
	}
	if bar != nil {
		_ = bar.Finish()
	}
	fmt.Fprintf(e.stdout, "Replayed %d dead letter(s)", total.Replayed)
	if total.Duplicates > 0 {
		fmt.Fprintf(e.stdout, " (%d already stored by an interrupted run)", total.Duplicates)
	}
	fmt.Fprintln(e.stdout, ".")
	if runErr != nil {
		return &exitError{code: 1, err: runErr}
	}
	if total.Skipped > 0 {
		for _, s := range skips {
			fmt.Fprintln(e.stderr, "skipped:", s)
		}
		return &exitError{code: 1, err: fmt.Errorf("%d letter(s) cannot be replayed and stay in the DLQ", total.Skipped)}
	}
	return nil
}

// isTerminal reports whether w is a terminal, where a progress bar belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// showPage is how many letters `dlq show` asks for per request.
var showPage = dlq.MaxEntries

// dlqClient calls the DLQ API of a node's admin listener.
type dlqClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

func newDLQClient(admin, token string) (*dlqClient, error) {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--admin: want the admin listener's URL such as http://127.0.0.1:8686, got %q", admin)
	}
	// A replay chunk may take up to a couple of minutes on a busy node.
	return &dlqClient{base: u, token: token, hc: &http.Client{Timeout: 3 * time.Minute}}, nil
}

func (c *dlqClient) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// Tells the node that a program, not a web form, sends this (see admin).
	req.Header.Set(admin.RequestHeader, "vigil-cli")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin API at %s (is `vigil run` running with admin.address there?): %w",
			c.base.Redacted(), err)
	}
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: HTTP %d: this node has no DLQ API (an older Vigil?)", method, path, resp.StatusCode)
	case http.StatusUnauthorized:
		resp.Body.Close()
		what := "needs its admin.token: pass --token or set " + tokenEnv
		if c.token != "" {
			what = "refused the token given (--token or " + tokenEnv + "): it is not the node's admin.token"
		}
		return nil, fmt.Errorf("%s %s: HTTP 401: the node %s", method, path, what)
	}
	return resp, nil
}

// call sends a request and decodes the JSON answer into out. A non-2xx answer is an
// error carrying the node's message; out is still filled when the node sent a
// partial result (a replay that stopped).
func (c *dlqClient) call(ctx context.Context, method, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, method, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, out)
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// stream sends a GET and calls fn for each line of the NDJSON answer.
func (c *dlqClient) stream(ctx context.Context, path string, q url.Values, fn func(line []byte) error) error {
	resp, err := c.do(ctx, http.MethodGet, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) == nil && e.Error != "" {
			return fmt.Errorf("GET %s: %s", path, e.Error)
		}
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	// One line holds one letter's original bytes, which may be several MiB.
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
