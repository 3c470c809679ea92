package s3source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/vigil-sec/vigil/internal/component"
)

// The fields every event of an object carries: where it came from (the names of
// Elastic's aws-s3 input), and the record's line in the decompressed object (for
// line formats).
const (
	FieldBucket = "aws.s3.bucket.name"
	FieldKey    = "aws.s3.object.key"
	FieldLine   = "aws.s3.object.line"
)

// Stats count what a Reader did with objects. Safe for concurrent use.
type Stats struct {
	Objects      atomic.Int64 // read and stored in full
	Records      atomic.Int64 // records stored
	Parts        atomic.Int64 // intake stores (chunks), duplicates included
	Missing      atomic.Int64 // gone before they were read (404, NoSuchKey)
	Skipped      atomic.Int64 // matched a skip rule
	DeadLettered atomic.Int64 // objects dead-lettered (no rule, unreadable); long lines not included
}

// Reader reads S3 objects and stores their records through an Intake. The s3 source
// uses one for the objects its notifications announce, and `vigil backfill` for the
// objects it lists.
type Reader struct {
	S3     *s3.Client
	Intake component.Intake
	// Format is the source's format: auto leaves it to the rules.
	Format string
	Rules  rules
	// Whole tells whether a format parses whole objects; nil: none does.
	Whole          func(format string) bool
	ChunkBytes     int
	MaxRecordBytes int
	Counters       *component.Counters
	Log            *slog.Logger
	Stats          Stats
}

// NewReader builds a Reader for the config's rules and limits; the caller sets S3,
// Intake and Whole.
func NewReader(cfg *Config, format string, counters *component.Counters, log *slog.Logger) (*Reader, error) {
	rs, err := compileRules(cfg.KeyRules, cfg.BuiltinKeyRules)
	if err != nil {
		return nil, err
	}
	if format == "" {
		format = FormatAuto
	}
	return &Reader{Format: format, Rules: rs, ChunkBytes: int(cfg.ChunkBytes), MaxRecordBytes: int(cfg.MaxRecordBytes),
		Counters: counters, Log: log}, nil
}

// FormatOf returns the format an object is read with, "skip", or "" when none
// applies (no rule matches and the source's format is auto).
func (r *Reader) FormatOf(key string) string {
	if f, ok := r.Rules.match(key); ok {
		return f
	}
	if r.Format == FormatAuto {
		return ""
	}
	return r.Format
}

// Ingest reads one object and stores every record of it. It returns nil when the
// object needs no further attempt: every record stored, or the object skipped by a
// rule, gone (404), or dead-lettered. An error means try again later (the intake or
// S3 failed); records already stored are then stored again under the same message
// IDs, which JetStream's duplicate window drops.
func (r *Reader) Ingest(ctx context.Context, ref ObjectRef) error {
	format := r.FormatOf(ref.Key)
	switch format {
	case FormatSkip:
		r.Stats.Skipped.Add(1)
		r.Counters.Discarded("skipped_key", 1)
		return nil
	case "":
		r.Stats.DeadLettered.Add(1)
		return r.deadLetter(ctx, ref, format, "no key rule matches this key and the source's format is auto; add a key_rules entry for it", nil)
	}
	out, err := r.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ref.Bucket), Key: aws.String(ref.Key)})
	if err != nil {
		if isNotFound(err) {
			r.Stats.Missing.Add(1)
			r.Counters.Error("object_missing")
			r.Log.Info("object gone before it was read", "bucket", ref.Bucket, "key", ref.Key)
			return nil
		}
		r.Counters.Error("s3_get")
		return fmt.Errorf("s3://%s/%s: get: %w", ref.Bucket, ref.Key, err)
	}
	defer out.Body.Close()
	if ref.ETag == "" || out.ETag != nil {
		ref.ETag = strings.Trim(aws.ToString(out.ETag), `"`)
	}
	body, err := decompress(out.Body)
	if err != nil {
		r.Stats.DeadLettered.Add(1)
		return r.deadLetter(ctx, ref, format, err.Error(), nil)
	}
	defer body.Close()
	whole := r.Whole != nil && r.Whole(format)
	st := &storer{r: r, ref: ref, format: format, received: time.Now()}
	if whole {
		data, err := io.ReadAll(io.LimitReader(body, int64(r.MaxRecordBytes)+1))
		if err != nil {
			r.Counters.Error("s3_read")
			return fmt.Errorf("s3://%s/%s: read: %w", ref.Bucket, ref.Key, err)
		}
		if len(data) > r.MaxRecordBytes {
			r.Stats.DeadLettered.Add(1)
			return r.deadLetter(ctx, ref, format, fmt.Sprintf("object is larger than max_record_bytes (%d) uncompressed; format %s reads whole objects", r.MaxRecordBytes, format), data[:4096])
		}
		st.add(data, 0)
	} else if err := r.lines(ctx, body, st); err != nil {
		return err
	}
	if err := st.flush(ctx); err != nil {
		return err
	}
	r.Stats.Objects.Add(1)
	return nil
}

// lines splits body into lines (without "\n" or "\r\n"), skipping empty ones, and
// hands them to st, which stores a chunk whenever it is full.
func (r *Reader) lines(ctx context.Context, body io.Reader, st *storer) error {
	br := bufio.NewReaderSize(body, 64<<10)
	var long []byte // a line longer than the buffer, being assembled
	tooLong := false
	for {
		frag, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong {
				long = append(long, frag...)
				if len(long) > r.MaxRecordBytes {
					tooLong = true
				}
			}
			continue
		}
		if err != nil && err != io.EOF {
			r.Counters.Error("s3_read")
			return fmt.Errorf("s3://%s/%s: read: %w", st.ref.Bucket, st.ref.Key, err)
		}
		line := frag
		if long != nil || tooLong {
			long = append(long, frag...)
			line = long
		}
		if len(line) > 0 {
			st.line++
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case tooLong || len(line) > r.MaxRecordBytes:
				if derr := r.deadLetter(ctx, st.ref, st.format, fmt.Sprintf("line %d is longer than max_record_bytes (%d)", st.line, r.MaxRecordBytes), line[:min(len(line), 4096)]); derr != nil {
					return derr
				}
			case len(line) > 0:
				st.add(line, st.line)
				if st.size >= r.ChunkBytes {
					if serr := st.flush(ctx); serr != nil {
						return serr
					}
				}
			}
		}
		long, tooLong = nil, false
		if err == io.EOF {
			return nil
		}
	}
}

// storer gathers one object's records into chunks, each stored with the message
// ID s3:<bucket>/<key>@<etag>:<part>.
type storer struct {
	r        *Reader
	ref      ObjectRef
	format   string
	received time.Time
	// buf holds the chunk's records back to back, ends[i] the end of record i;
	// Store copies them, so both are reused for the next chunk.
	buf   []byte
	ends  []int
	recs  [][]byte
	lines []int // line of each record; 0 for a whole object
	size  int
	part  int
	line  int
}

func (s *storer) add(rec []byte, line int) {
	s.buf = append(s.buf, rec...)
	s.ends = append(s.ends, len(s.buf))
	s.lines = append(s.lines, line)
	s.size += len(rec)
}

func (s *storer) flush(ctx context.Context) error {
	if len(s.ends) == 0 {
		return nil
	}
	s.recs = s.recs[:0]
	start := 0
	for _, end := range s.ends {
		s.recs = append(s.recs, s.buf[start:end:end])
		start = end
	}
	id := fmt.Sprintf("s3:%s/%s@%s:%d", s.ref.Bucket, s.ref.Key, s.ref.ETag, s.part)
	recs := component.Records{Format: s.format, Received: s.received, Records: s.recs, ID: id,
		Fields: map[string]string{FieldBucket: s.ref.Bucket, FieldKey: s.ref.Key}}
	if s.lines[0] > 0 {
		recs.Lines, recs.LineField = s.lines, FieldLine
	}
	err := s.r.Intake.Store(ctx, recs)
	if err != nil {
		if errors.Is(err, component.ErrTooLarge) {
			s.r.Stats.DeadLettered.Add(1)
			return s.r.deadLetter(ctx, s.ref, s.format, fmt.Sprintf("part %d is too large for the intake stream: %v", s.part, err), nil)
		}
		return fmt.Errorf("s3://%s/%s: store part %d: %w", s.ref.Bucket, s.ref.Key, s.part, err)
	}
	s.r.Counters.Received(len(s.recs), s.size)
	s.r.Stats.Records.Add(int64(len(s.recs)))
	s.r.Stats.Parts.Add(1)
	clear(s.recs)
	s.buf, s.ends, s.recs, s.lines, s.size = s.buf[:0], s.ends[:0], s.recs[:0], s.lines[:0], 0
	s.part++
	return nil
}

// deadLetter stores a letter about an object: its s3:// address, the reason and,
// when given, the first bytes of what could not be read.
func (r *Reader) deadLetter(ctx context.Context, ref ObjectRef, format, reason string, original []byte) error {
	addr := fmt.Sprintf("s3://%s/%s", ref.Bucket, ref.Key)
	if original == nil {
		original = []byte(addr)
	}
	r.Log.Warn("object dead-lettered", "object", addr, "reason", reason)
	l := component.Letter{Stage: "intake", Reason: addr + ": " + reason, Format: format, Time: time.Now(),
		Original: original, ID: fmt.Sprintf("s3-dlq:%s/%s@%s:%s", ref.Bucket, ref.Key, ref.ETag, reason)}
	if err := r.Intake.DeadLetter(ctx, l); err != nil {
		return fmt.Errorf("%s: dead-letter: %w", addr, err)
	}
	return nil
}

// decompress recognises gzip and zstd by their magic bytes; anything else is read
// as it is.
func decompress(body io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br) // multistream: concatenated members read as one
		if err != nil {
			return nil, fmt.Errorf("gzip: %v", err)
		}
		return zr, nil
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %v", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return true
		}
	}
	return false
}
