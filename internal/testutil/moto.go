package testutil

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Moto is a moto_server process: AWS's S3, SQS and SNS APIs on one endpoint, with
// real S3 event notifications to the queues a bucket's notification configuration
// names. scripts/test.sh installs it from PyPI (moto[server]).
type Moto struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// MotoAccount is the account moto runs as: queue URLs and ARNs name it.
const MotoAccount = "123456789012"

// StartMoto starts moto_server on a free loopback port and stops it when the test
// ends. A machine without moto_server fails the test: scripts/test.sh installs it.
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not found: install it with python3 -m pip install \"moto[server]\" (scripts/test.sh does): %v", err)
	}
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	// Its own process group, so that Stop reaches the server and not only a wrapper
	// (pyenv's shim is a shell script).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &Moto{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	t.Cleanup(m.Stop)
	Eventually(t, 60*time.Second, "moto_server answering", func() bool {
		select {
		case <-m.done:
			t.Fatalf("moto_server exited before answering")
		default:
		}
		resp, err := http.Get(m.Endpoint() + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return m
}

// Endpoint is the base URL of every API.
func (m *Moto) Endpoint() string { return "http://" + m.addr }

// Stop ends the server's process group; it is idempotent.
func (m *Moto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
	m.cmd = nil
}

// NewHTTPClient is an HTTP client for a test's AWS clients whose idle connections
// are closed when the test ends, so that leak checks see no reader goroutines.
func NewHTTPClient(t testing.TB) *http.Client {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// S3 is an S3 client of the server (path-style; moto takes any credentials).
func (m *Moto) S3(t testing.TB) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), HTTPClient: NewHTTPClient(t)})
}

// SQS is an SQS client of the server.
func (m *Moto) SQS(t testing.TB) *sqs.Client {
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), HTTPClient: NewHTTPClient(t)})
}

// NotifyingBucket creates a queue and a bucket whose notification configuration
// sends every s3:ObjectCreated:* event to it, as the buckets AWS services write
// their logs to are set up; it returns the queue URL. S3 itself then announces each
// upload (after its s3:TestEvent).
func (m *Moto) NotifyingBucket(t testing.TB, bucket, queue string) string {
	t.Helper()
	ctx := context.Background()
	q, err := m.SQS(t).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue)})
	if err != nil {
		t.Fatal(err)
	}
	m.Bucket(t, bucket)
	_, err = m.S3(t).PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String("arn:aws:sqs:us-east-1:" + MotoAccount + ":" + queue),
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(q.QueueUrl)
}

// Bucket creates a bucket that announces nothing.
func (m *Moto) Bucket(t testing.TB, bucket string) {
	t.Helper()
	if _, err := m.S3(t).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
}

// Put uploads an object.
func (m *Moto) Put(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	_, err := m.S3(t).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// QueueEmpty reports whether no message of the queue is waiting or in flight.
func (m *Moto) QueueEmpty(t testing.TB, queueURL string) bool {
	t.Helper()
	out, err := m.SQS(t).GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
}

// CPU is the CPU time moto's processes have used so far.
func (m *Moto) CPU() time.Duration {
	if m.cmd == nil {
		return 0
	}
	return GroupCPU(m.cmd.Process.Pid)
}
