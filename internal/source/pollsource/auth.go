package pollsource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// authorizer sets a request's credentials.
type authorizer struct {
	cfg    Auth
	client *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

// apply sets the credentials; for oauth2 it fetches a token first when there is
// none or it is about to expire.
func (a *authorizer) apply(ctx context.Context, req *http.Request) error {
	switch a.cfg.Type {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	case "basic":
		req.SetBasicAuth(a.cfg.Username, a.cfg.Password)
	case "api_key":
		req.Header.Set(a.cfg.Header, a.cfg.Key)
	case "oauth2":
		tok, err := a.oauthToken(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// invalidate drops a cached OAuth token after a 401; it reports whether there was
// one to drop (so a retry may help).
func (a *authorizer) invalidate() bool {
	if a.cfg.Type != "oauth2" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	had := a.token != ""
	a.token = ""
	return had
}

func (a *authorizer) oauthToken(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && time.Now().Before(a.expires) {
		return a.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(a.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(a.cfg.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: the client authenticates with HTTP basic, its id and
	// secret form-encoded first.
	req.SetBasicAuth(url.QueryEscape(a.cfg.ClientID), url.QueryEscape(a.cfg.ClientSecret))
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("oauth2 token request to %s: %w", a.cfg.TokenURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		// The error body of a token endpoint names the problem (invalid_client),
		// never a secret.
		return "", fmt.Errorf("oauth2 token request to %s: %s: %s", a.cfg.TokenURL, resp.Status, snippet(body))
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("oauth2 token response from %s has no access_token", a.cfg.TokenURL)
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour
	}
	// Renew a little early, so that a token does not expire in flight.
	a.token, a.expires = tr.AccessToken, time.Now().Add(life-min(life/10, time.Minute))
	return a.token, nil
}

// snippet is the start of a response body, for error messages.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
