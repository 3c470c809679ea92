// Package s3sink is the `s3` sink: event batches archived as objects in an S3 bucket
// (or an S3-compatible server), either compressed NDJSON (gzip or zstd) or Parquet
// with typed columns for the common ECS fields plus the whole document.
//
// Objects. Batches are gathered per dataset into one open object, ended when its
// documents reach max_bytes or it is max_age old, then uploaded (multipart above
// part_size) with the configured server-side encryption and storage class. Its key
// is the template's prefix, rendered from the dataset and the stream time of the
// object's first batch (component.Batch.Time, the same on every redelivery),
// followed by "<epoch>-<min-seq>-<max-seq>.<ext>": the events stream's epoch
// (component.Batch.Epoch, its creation time) and the sequences it holds. A
// recreated events stream numbers its batches from 1 again, under a new epoch, so
// its objects never overwrite a former stream's. Its batches are acknowledged only
// after S3 confirmed the upload.
//
// Exactly once. A crash between the upload and the acknowledgement makes the stream
// redeliver batches that are already in the bucket. Sequence ranges are not exact
// sets (other datasets' batches interleave), so before an object is uploaded the
// sink writes a small manifest, <manifest_prefix><sink>/<dataset>/<epoch>/<max>-<min>
// (sequences zero-padded to 20 digits), holding the object's key and its exact
// sequence list. PutObject and CompleteMultipartUpload are atomic, so the object
// either exists whole or not at all. When a batch arrives marked as redelivered
// and this process has not uploaded it itself, the sink lists the manifests whose
// max is at least the batch's sequence (one LIST with StartAfter: the names sort by
// max), reads those whose range covers it, and when one lists the sequence and
// its object exists (HEAD), acknowledges the batch without writing it again. A
// manifest without its object (a crash between the two uploads) is ignored, and
// the batch is written again. A retried upload of the same batches gets the same
// key and overwrites itself. Manifests are not deleted by the sink; an S3
// lifecycle rule on manifest_prefix may expire them after a few days (well past
// buffer.ack_wait). The manifests of a former events stream are in another epoch's
// folder and are never read again.
//
// Failures. Uploads and lookups are retried with backoff for as long as the sink
// runs: a server that is down or answers 5xx holds the stream back (backpressure),
// never drops. Batches still held when Stop's deadline passes are handed back with
// an error and redelivered later.
//
// buffer.ack_wait must exceed max_age plus the time an upload takes; a batch the
// stream redelivers while the sink still holds it is recognised and acknowledged
// with the object that holds it.
package s3sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vigil-sec/vigil/internal/component"
)

// Sink uploads event batches to S3 objects.
type Sink struct {
	cfg      Config
	key      keyTemplate
	name     string
	log      *slog.Logger
	counters *component.Counters

	client   *s3.Client
	uploader *manager.Uploader

	mu      sync.Mutex
	open    map[stretch]*object
	pending map[stretch]map[uint64]*object // sequences held in an open or ended object
	done    map[stretch]map[uint64]time.Time
	stopped bool
	started bool

	uploads    chan *object
	quit       chan struct{} // closed by Stop once every held object is queued
	stopTicker chan struct{}
	runCtx     context.Context
	cancelRun  context.CancelFunc
	workers    sync.WaitGroup
	ticker     sync.WaitGroup
}

var (
	_ component.Sink      = (*Sink)(nil)
	_ component.Pruner    = (*Sink)(nil)
	_ component.FrameSink = (*Sink)(nil)
)

// stretch is a dataset's batches in one events stream epoch: the batches of one
// object come from one stretch.
type stretch struct {
	epoch   int64
	dataset string
}

func stretchOf(b *component.Batch) stretch { return stretch{epoch: b.Epoch, dataset: b.Dataset} }

// object is one object being filled or uploaded.
type object struct {
	stretch
	first   time.Time // stream time of the first batch: renders the key prefix
	opened  time.Time
	enc     encoder
	size    int
	events  int
	seqs    []uint64
	batches []*component.Batch
	// extra are redeliveries of batches the object already holds; they are
	// acknowledged with it.
	extra []*component.Batch
}

// manifest is the body of a manifest object.
type manifest struct {
	Object  string `json:"object"`
	Dataset string `json:"dataset"`
	Epoch   int64  `json:"epoch"`
	Seqs    string `json:"seqs"`
	Events  int    `json:"events"`
	Bytes   int    `json:"bytes"`
}

// New returns an s3 sink; it connects nothing until Start.
func New(cfg *Config, deps component.SinkDeps) (*Sink, error) {
	c := *cfg
	key, err := parseKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: key: %w", deps.Name, err)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: c, key: key, name: deps.Name, log: log, counters: deps.Metrics.For("sink", deps.Name),
		open: map[stretch]*object{}, pending: map[stretch]map[uint64]*object{}, done: map[stretch]map[uint64]time.Time{}}, nil
}

// Describe implements component.Sink.
func (s *Sink) Describe() string {
	where := "s3://" + s.cfg.Bucket + "/"
	if s.cfg.Endpoint != "" {
		where += " at " + s.cfg.Endpoint
	}
	return "s3 (" + s.cfg.Encoding + ") to " + where
}

// Start implements component.Sink: it builds the client and checks that the bucket
// is reachable, so a wrong bucket or credentials fail at start-up.
func (s *Sink) Start(ctx context.Context) error {
	awsCfg, err := s.cfg.ClientConfig.Load(ctx,
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(s.cfg.RequestTimeout)),
		// The sink retries on its own, forever; the SDK's few quick attempts smooth
		// over single failed requests.
		awsconfig.WithRetryMaxAttempts(3))
	if err != nil {
		return fmt.Errorf("s3 sink %s: %w", s.name, err)
	}
	s.client = s3.NewFromConfig(awsCfg, s.cfg.ClientConfig.S3Options)
	s.uploader = manager.NewUploader(s.client, func(u *manager.Uploader) {
		u.PartSize = int64(s.cfg.PartSize)
		u.Concurrency = 2
	})
	hctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if _, err := s.client.HeadBucket(hctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)}); err != nil {
		return fmt.Errorf("s3 sink %s: bucket %q at %s: %w (check bucket, endpoint, region and credentials)",
			s.name, s.cfg.Bucket, s.cfg.EndpointName(), err)
	}
	s.runCtx, s.cancelRun = context.WithCancel(context.Background())
	s.uploads = make(chan *object)
	s.quit = make(chan struct{})
	s.stopTicker = make(chan struct{})
	for range s.cfg.UploadConcurrency {
		s.workers.Go(s.work)
	}
	s.ticker.Go(s.tick)
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return nil
}

// FrameEncoding implements component.FrameSink: ndjson objects take event batches
// compressed as they are (parquet objects take none).
func (s *Sink) FrameEncoding() string { return s.cfg.frameEncoding() }

// Consume implements component.Sink.
func (s *Sink) Consume(ctx context.Context, b *component.Batch) error {
	s.mu.Lock()
	if s.stopped || !s.started {
		s.mu.Unlock()
		return errors.New("s3 sink: not running")
	}
	handled := s.heldLocked(b)
	s.mu.Unlock()
	if handled {
		return nil
	}
	if b.Redelivered {
		found, err := s.lookup(ctx, b)
		if err != nil {
			s.counters.Error("lookup")
			s.log.Warn("s3 sink: cannot check whether a redelivered batch is archived; it will be redelivered",
				"sink", s.name, "seq", b.Seq, "err", err)
			b.Done(err)
			return nil
		}
		if found {
			s.counters.Discarded("already_archived", b.Count)
			b.Done(nil)
			return nil
		}
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errors.New("s3 sink: stopped")
	}
	if s.heldLocked(b) {
		s.mu.Unlock()
		return nil
	}
	at := stretchOf(b)
	o := s.open[at]
	if o == nil {
		enc, err := s.newEncoder(b.Dataset)
		if err != nil {
			s.mu.Unlock()
			s.counters.Error("encode")
			b.Done(err)
			return nil
		}
		o = &object{stretch: at, first: b.Time, opened: time.Now(), enc: enc}
		s.open[at] = o
	}
	var err error
	if nd, ok := o.enc.(*ndjsonEncoder); ok && b.Frame != nil {
		nd.writeFrame(b.Frame)
	} else {
		err = o.enc.write(b.Docs)
	}
	if err != nil {
		// The encoders write to memory, so this is a bug; hand everything back.
		delete(s.open, at)
		s.mu.Unlock()
		s.counters.Error("encode")
		s.log.Error("s3 sink: encoding failed; batches will be redelivered", "sink", s.name, "err", err)
		s.abandon(o, err)
		b.Done(err)
		return nil
	}
	o.size += b.Size
	o.events += b.Count
	o.seqs = append(o.seqs, b.Seq)
	o.batches = append(o.batches, b)
	set := s.pending[at]
	if set == nil {
		set = map[uint64]*object{}
		s.pending[at] = set
	}
	set[b.Seq] = o
	var full *object
	if o.size >= int(s.cfg.MaxBytes) {
		delete(s.open, at)
		full = o
	}
	s.mu.Unlock()
	if full != nil {
		s.enqueue(ctx, full)
	}
	return nil
}

// heldLocked handles a batch the sink already holds or has uploaded itself, and
// reports whether it did.
func (s *Sink) heldLocked(b *component.Batch) bool {
	if o := s.pending[stretchOf(b)][b.Seq]; o != nil {
		o.extra = append(o.extra, b)
		return true
	}
	if _, ok := s.done[stretchOf(b)][b.Seq]; ok {
		s.counters.Discarded("already_archived", b.Count)
		b.Done(nil)
		return true
	}
	return false
}

// enqueue hands an ended object to the uploaders, waiting while they are busy
// (backpressure).
func (s *Sink) enqueue(ctx context.Context, o *object) {
	select {
	case s.uploads <- o:
	case <-ctx.Done():
		s.abandon(o, fmt.Errorf("s3 sink: %w", ctx.Err()))
	case <-s.runCtx.Done():
		s.abandon(o, errors.New("s3 sink: stopped before upload"))
	}
}

// abandon hands an object's batches back for redelivery.
func (s *Sink) abandon(o *object, err error) {
	s.mu.Lock()
	s.releaseLocked(o)
	s.mu.Unlock()
	for _, b := range o.batches {
		b.Done(err)
	}
	for _, b := range o.extra {
		b.Done(err)
	}
}

func (s *Sink) releaseLocked(o *object) {
	set := s.pending[o.stretch]
	for _, q := range o.seqs {
		if set[q] == o {
			delete(set, q)
		}
	}
}

func (s *Sink) work() {
	for {
		select {
		case o := <-s.uploads:
			s.upload(o)
		case <-s.quit:
			for {
				select {
				case o := <-s.uploads:
					s.upload(o)
				default:
					return
				}
			}
		}
	}
}

// upload writes the object's manifest, then the object, then acknowledges its
// batches; on giving up (Stop's deadline) it hands them back.
func (s *Sink) upload(o *object) {
	data, err := o.enc.finish()
	if err != nil {
		s.counters.Error("encode")
		s.log.Error("s3 sink: encoding failed; batches will be redelivered", "sink", s.name, "err", err)
		s.abandon(o, err)
		return
	}
	seqs := slices.Clone(o.seqs)
	slices.Sort(seqs)
	lo, hi := seqs[0], seqs[len(seqs)-1]
	key := s.key.render(o.dataset, s.name, o.first) + fmt.Sprintf("%d-%d-%d", o.epoch, lo, hi) + o.enc.ext()
	list := formatSeqs(seqs)
	body, _ := json.Marshal(manifest{Object: key, Dataset: o.dataset, Epoch: o.epoch, Seqs: list, Events: o.events, Bytes: o.size})
	mkey := s.manifestKey(o.stretch, hi, lo)
	err = s.retry("manifest "+mkey, func(ctx context.Context) error {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(mkey),
			Body: strings.NewReader(string(body)), ContentType: aws.String("application/json"),
		})
		return err
	})
	if err == nil {
		meta := map[string]string{"vigil-sink": s.name, "vigil-dataset": o.dataset, "vigil-events": strconv.Itoa(o.events),
			"vigil-epoch": strconv.FormatInt(o.epoch, 10)}
		// User metadata is limited to 2KiB in all; the manifest always has the list.
		if len(list) <= 1024 {
			meta["vigil-seqs"] = list
		}
		in := &s3.PutObjectInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key),
			ContentType: aws.String(o.enc.contentType()), Metadata: meta,
		}
		if s.cfg.SSE != "" && s.cfg.SSE != "none" {
			in.ServerSideEncryption = types.ServerSideEncryption(s.cfg.SSE)
			if s.cfg.KMSKeyID != "" {
				in.SSEKMSKeyId = aws.String(s.cfg.KMSKeyID)
			}
		}
		if s.cfg.StorageClass != "" {
			in.StorageClass = types.StorageClass(s.cfg.StorageClass)
		}
		err = s.retry("object "+key, func(ctx context.Context) error {
			in.Body = bytes.NewReader(data)
			_, err := s.uploader.Upload(ctx, in)
			return err
		})
	}
	if err != nil {
		s.log.Error("s3 sink: upload abandoned; batches will be redelivered", "sink", s.name, "key", key, "err", err)
		s.abandon(o, err)
		return
	}
	now := time.Now()
	s.mu.Lock()
	s.releaseLocked(o)
	set := s.done[o.stretch]
	if set == nil {
		set = map[uint64]time.Time{}
		s.done[o.stretch] = set
	}
	for _, q := range seqs {
		set[q] = now
	}
	s.mu.Unlock()
	for _, b := range o.batches {
		b.Done(nil)
	}
	for _, b := range o.extra {
		b.Done(nil)
	}
	s.counters.Sent(o.events, o.size)
	s.counters.Request("200")
}

// manifestDir is where the manifests of one dataset in one epoch live.
func (s *Sink) manifestDir(at stretch) string {
	return s.cfg.ManifestPrefix + s.name + "/" + at.dataset + "/" + strconv.FormatInt(at.epoch, 10) + "/"
}

// manifestKey names a manifest by its max then min sequence, zero-padded so that
// keys sort by max.
func (s *Sink) manifestKey(at stretch, hi, lo uint64) string {
	return fmt.Sprintf("%s%020d-%020d", s.manifestDir(at), hi, lo)
}

// lookupPages bounds the LIST pages read for one redelivered batch: an object
// holding the batch has a max sequence at or above it, and sorts among the first
// manifests from there unless thousands of objects were written in between.
const lookupPages = 5

// lookup reports whether a redelivered batch is in an object of the bucket.
func (s *Sink) lookup(ctx context.Context, b *component.Batch) (bool, error) {
	dir := s.manifestDir(stretchOf(b))
	var token *string
	for range lookupPages {
		var out *s3.ListObjectsV2Output
		err := s.retryCtx(ctx, "list "+dir, func(ctx context.Context) error {
			var err error
			in := &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(dir), ContinuationToken: token}
			if token == nil {
				in.StartAfter = aws.String(fmt.Sprintf("%s%020d", dir, b.Seq))
			}
			out, err = s.client.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return false, err
		}
		for _, obj := range out.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), dir)
			hiS, loS, ok := strings.Cut(name, "-")
			hi, err1 := strconv.ParseUint(hiS, 10, 64)
			lo, err2 := strconv.ParseUint(loS, 10, 64)
			if !ok || err1 != nil || err2 != nil || lo > b.Seq || hi < b.Seq {
				continue
			}
			found, err := s.checkManifest(ctx, aws.ToString(obj.Key), b)
			if err != nil || found {
				return found, err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return false, nil
		}
		token = out.NextContinuationToken
	}
	return false, nil
}

// checkManifest reports whether a manifest lists the batch and its object exists;
// then every sequence of the object is remembered as archived.
func (s *Sink) checkManifest(ctx context.Context, mkey string, b *component.Batch) (bool, error) {
	var m manifest
	err := s.retryCtx(ctx, "manifest "+mkey, func(ctx context.Context) error {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(mkey)})
		if err != nil {
			if isNotFound(err) {
				return nil // expired meanwhile
			}
			return err
		}
		defer out.Body.Close()
		if err := json.NewDecoder(io.LimitReader(out.Body, 64<<20)).Decode(&m); err != nil {
			s.log.Warn("s3 sink: unreadable manifest ignored", "sink", s.name, "key", mkey, "err", err)
			m = manifest{}
		}
		return nil
	})
	if err != nil || m.Object == "" {
		return false, err
	}
	seqs, err := parseSeqs(m.Seqs)
	if err != nil {
		s.log.Warn("s3 sink: unreadable manifest ignored", "sink", s.name, "key", mkey, "err", err)
		return false, nil
	}
	if _, ok := slices.BinarySearch(seqs, b.Seq); !ok {
		return false, nil
	}
	exists := false
	err = s.retryCtx(ctx, "head "+m.Object, func(ctx context.Context) error {
		_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(m.Object)})
		if err == nil {
			exists = true
			return nil
		}
		if isNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil || !exists {
		return false, err
	}
	now := time.Now()
	s.mu.Lock()
	set := s.done[stretchOf(b)]
	if set == nil {
		set = map[uint64]time.Time{}
		s.done[stretchOf(b)] = set
	}
	for _, q := range seqs {
		set[q] = now
	}
	s.mu.Unlock()
	return true, nil
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nsk) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// retry runs f until it succeeds or the sink stops.
func (s *Sink) retry(what string, f func(context.Context) error) error {
	return s.retryCtx(s.runCtx, what, f)
}

// retryCtx runs f until it succeeds or ctx or the sink ends, with exponential
// backoff and jitter between attempts.
func (s *Sink) retryCtx(ctx context.Context, what string, f func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.runCtx, cancel)
	defer stop()
	delay := s.cfg.Retry.Initial
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.counters.Error("s3")
		s.counters.Retry()
		s.log.Warn("s3 sink: request failed, retrying", "sink", s.name, "what", what, "attempt", attempt, "err", err)
		wait := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, err)
		}
		delay = min(delay*2, s.cfg.Retry.Max)
	}
}

func (s *Sink) tick() {
	period := min(s.cfg.MaxAge/4, time.Second)
	t := time.NewTicker(max(period, 25*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stopTicker:
			return
		case <-t.C:
		}
		var aged []*object
		s.mu.Lock()
		for ds, o := range s.open {
			if time.Since(o.opened) >= s.cfg.MaxAge {
				delete(s.open, ds)
				aged = append(aged, o)
			}
		}
		// Sequences uploaded long ago will not come back but through a lost
		// acknowledgement, which the manifests answer too.
		for _, set := range s.done {
			for q, at := range set {
				if time.Since(at) > 10*time.Minute {
					delete(set, q)
				}
			}
		}
		s.mu.Unlock()
		for _, o := range aged {
			s.enqueue(s.runCtx, o)
		}
	}
}

// Prune implements component.Pruner: the sink forgets the batches it uploaded that
// the stream will not deliver again.
func (s *Sink) Prune(epoch int64, floor uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for at, set := range s.done {
		if at.epoch != epoch {
			delete(s.done, at)
			continue
		}
		for q := range set {
			if q <= floor {
				delete(set, q)
			}
		}
		if len(set) == 0 {
			delete(s.done, at)
		}
	}
}

// Stop implements component.Sink: every held object is uploaded and its batches
// acknowledged; those not uploaded by ctx's deadline are handed back.
func (s *Sink) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped || !s.started {
		s.stopped = true
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	// Give up on uploads when the deadline passes, so Stop returns in time.
	stopAfter := context.AfterFunc(ctx, s.cancelRun)
	defer stopAfter()
	close(s.stopTicker)
	s.ticker.Wait()
	s.mu.Lock()
	var rest []*object
	for ds, o := range s.open {
		delete(s.open, ds)
		rest = append(rest, o)
	}
	s.mu.Unlock()
	for _, o := range rest {
		s.enqueue(s.runCtx, o)
	}
	close(s.quit)
	s.workers.Wait()
	s.cancelRun()
	return nil
}
