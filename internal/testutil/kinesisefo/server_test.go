package kinesisefo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// client is an SDK client that trusts the server's certificate; http2 false forces
// HTTP/1.1.
func client(t *testing.T, s *Server, http2 bool) *kinesis.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: http2}
	if !http2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint()), HTTPClient: &http.Client{Transport: tr},
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

// consumerARN registers a consumer on a new 1-shard stream and waits for it.
func consumerARN(t *testing.T, s *Server, c *kinesis.Client) string {
	t.Helper()
	s.CreateStream("s", 1)
	ctx := context.Background()
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN,
		ConsumerName: aws.String("c")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(reg.Consumer.ConsumerARN)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return arn
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s still %s", arn, d.ConsumerDescription.ConsumerStatus)
		}
	}
}

// TestSubscribe: records put before and during a subscription arrive in events,
// each once, with continuation sequence numbers; a second subscription of the same
// consumer and shard is refused while the first is open; the stream ends at the
// lifetime.
func TestSubscribe(t *testing.T) {
	s := Start(t)
	s.Lifetime = 2 * time.Second
	c := client(t, s, true)
	arn := consumerARN(t, s, c)
	s.Put("s", "k", []byte("r0"))
	ctx := context.Background()
	out, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn), ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatal(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	_, err = c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn), ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("second subscription: want ResourceInUseException, got %v", err)
	}
	var got []string
	var last string
	for ev := range stream.Events() {
		e := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent).Value
		for _, r := range e.Records {
			got = append(got, string(r.Data))
			last = aws.ToString(r.SequenceNumber)
		}
		if len(e.Records) > 0 && aws.ToString(e.ContinuationSequenceNumber) != last {
			t.Errorf("continuation %s, want the last record's %s", aws.ToString(e.ContinuationSequenceNumber), last)
		}
		if len(got) == 1 {
			s.Put("s", "k", []byte("r1"))
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "r0,r1" {
		t.Fatalf("got %v, want r0,r1", got)
	}
}

// TestHTTP1Refused: SubscribeToShard over HTTP/1.1 is refused, as AWS requires
// HTTP/2.
func TestHTTP1Refused(t *testing.T) {
	s := Start(t)
	c := client(t, s, false)
	arn := consumerARN(t, s, c)
	_, err := c.SubscribeToShard(context.Background(), &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	var bad *types.InvalidArgumentException
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "HTTP/2") {
		t.Fatalf("want InvalidArgumentException naming HTTP/2, got %v", err)
	}
}
