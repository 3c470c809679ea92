// Package awsconf is the AWS client settings shared by every component that calls an
// AWS API (the s3 sink, and the s3, sqs and kinesis sources): where the API is
// (region, endpoint, path-style addressing) and who calls it (static keys or the
// SDK's default credential chain, optionally exchanged for an assumed role).
//
// A component embeds ClientConfig inline, so that its keys sit beside the
// component's own:
//
//	type Config struct {
//		awsconf.ClientConfig `yaml:",inline"`
//		Bucket string `yaml:"bucket"`
//	}
//
// calls ClientConfig.Validate from its own Validate, and builds its clients in Start
// from Load's aws.Config, with S3Options (or the endpoint, for other services).
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// DefaultRegion is the region components start from; most S3-compatible servers
// accept it whatever their location.
const DefaultRegion = "us-east-1"

// DefaultRoleSessionName names the assumed-role session when role_session_name is
// empty; it shows in the role account's CloudTrail as the caller.
const DefaultRoleSessionName = "vigil"

// ClientConfig is how a component reaches an AWS API.
type ClientConfig struct {
	// Endpoint is the API's base URL for S3-compatible servers (MinIO, versitygw,
	// Ceph), LocalStack or VPC endpoints; empty means AWS's endpoint of the region.
	Endpoint string `yaml:"endpoint"`
	// Region of the resource, used for request signing.
	Region string `yaml:"region"`
	// ForcePathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead of
	// <bucket>.<endpoint>; default true when endpoint is set, false otherwise.
	ForcePathStyle *bool `yaml:"force_path_style"`
	// AccessKeyID and SecretAccessKey are static credentials; when empty the AWS SDK's
	// default chain is used (environment, shared files, web identity, ECS/EC2 roles).
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key" secret:"true"`
	// SessionToken goes with temporary static credentials.
	SessionToken string `yaml:"session_token" secret:"true"`
	// RoleARN, when set, is an IAM role (arn:aws:iam::<account>:role/<name>) assumed
	// through STS with the credentials above; the temporary credentials are renewed
	// before they expire. For cross-account access.
	RoleARN string `yaml:"role_arn"`
	// ExternalID is passed when assuming role_arn, if the role's trust policy requires
	// one.
	ExternalID string `yaml:"external_id"`
	// RoleSessionName names the assumed-role session in the role account's CloudTrail;
	// empty: vigil.
	RoleSessionName string `yaml:"role_session_name"`
}

// The shapes IAM and STS accept; see the AssumeRole API reference.
var (
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	externalIDPattern  = regexp.MustCompile(`^[\w+=,.@:/-]+$`) // 2 to 1224 long; RE2 counts only to 1000
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// PathStyle resolves force_path_style's default.
func (c *ClientConfig) PathStyle() bool {
	if c.ForcePathStyle != nil {
		return *c.ForcePathStyle
	}
	return c.Endpoint != ""
}

// EndpointName names where requests go, for messages: the endpoint, or the region.
func (c *ClientConfig) EndpointName() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	return "AWS " + c.Region
}

// Validate checks the settings; each error starts with the key it is about, so the
// config loader can place it.
func (c *ClientConfig) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("endpoint: not a URL: %v", err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("endpoint: want an http or https URL, got %q", u.Redacted()))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint: no host in %q", u.Redacted()))
		case u.User != nil:
			errs = append(errs, fmt.Errorf("endpoint: credentials do not belong in the URL %q; use access_key_id and secret_access_key", u.Redacted()))
		}
	}
	if c.Region == "" {
		errs = append(errs, errors.New("region: required (us-east-1 for most S3-compatible servers)"))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("access_key_id: set both access_key_id and secret_access_key, or neither to use the AWS default credential chain"))
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		errs = append(errs, errors.New("session_token: only with access_key_id and secret_access_key"))
	}
	if c.RoleARN != "" && !roleARNPattern.MatchString(c.RoleARN) {
		errs = append(errs, fmt.Errorf("role_arn: want an IAM role ARN such as arn:aws:iam::123456789012:role/vigil, got %q", c.RoleARN))
	}
	if c.ExternalID != "" {
		// The external id is a shared value between accounts: never echo it.
		if c.RoleARN == "" {
			errs = append(errs, errors.New("external_id: only with role_arn"))
		} else if len(c.ExternalID) < 2 || len(c.ExternalID) > 1224 || !externalIDPattern.MatchString(c.ExternalID) {
			errs = append(errs, errors.New("external_id: want 2 to 1224 letters, digits or +=,.@:/-_"))
		}
	}
	if c.RoleSessionName != "" {
		if c.RoleARN == "" {
			errs = append(errs, errors.New("role_session_name: only with role_arn"))
		} else if !sessionNamePattern.MatchString(c.RoleSessionName) {
			errs = append(errs, fmt.Errorf("role_session_name: want 2 to 64 letters, digits or +=,.@-_, got %q", c.RoleSessionName))
		}
	}
	return errors.Join(errs...)
}

// Load returns the SDK config of these settings: the region, the credentials (static
// keys, else the default chain; exchanged for role_arn's when set), and the caller's
// opts (HTTP client, retries) applied last. The endpoint is not in it: it is the
// service's, not STS's, and service clients take it from S3Options or Endpoint.
// Nothing is fetched yet: credentials are resolved on the first request.
func (c *ClientConfig) Load(ctx context.Context, opts ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	all := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(c.Region)}
	if c.AccessKeyID != "" {
		all = append(all, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	all = append(all, opts...)
	cfg, err := awsconfig.LoadDefaultConfig(ctx, all...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS config: %w", err)
	}
	if c.RoleARN != "" {
		name := c.RoleSessionName
		if name == "" {
			name = DefaultRoleSessionName
		}
		// STS is called with the base credentials; the cache renews the role's
		// credentials shortly before they expire.
		p := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), c.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = name
			if c.ExternalID != "" {
				o.ExternalID = aws.String(c.ExternalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(p)
	}
	return cfg, nil
}

// BaseEndpoint is the endpoint for a client's Options.BaseEndpoint: nil, the
// service's own endpoint, when none is configured. For any service client:
// sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = c.BaseEndpoint() }).
func (c *ClientConfig) BaseEndpoint() *string {
	if c.Endpoint == "" {
		return nil
	}
	return aws.String(c.Endpoint)
}

// S3Options applies the endpoint and path-style addressing to an S3 client:
// s3.NewFromConfig(cfg, c.S3Options).
func (c *ClientConfig) S3Options(o *s3.Options) {
	o.BaseEndpoint = c.BaseEndpoint()
	o.UsePathStyle = c.PathStyle()
	// S3-compatible servers differ in their support of the newer default checksums;
	// only send and check them where the API requires them.
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// HTTPClient returns an HTTP client for Load's WithHTTPClient, and a function that
// closes its idle connections, for a component's Stop: the SDK's shared default
// client would keep them (and their goroutines) for the life of the process. It is
// the SDK's buildable client, so that AWS_CA_BUNDLE and the like still apply.
func HTTPClient() (*awshttp.BuildableClient, func()) {
	var tr atomic.Pointer[http.Transport]
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { tr.Store(t) })
	return hc, func() {
		if t := tr.Load(); t != nil {
			t.CloseIdleConnections()
		}
	}
}
