package s3source

import sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

// SetBeforeDelete installs a hook called before a message is deleted; when it
// returns false the message is left undeleted, as a crash there would.
func (s *Source) SetBeforeDelete(f func(body string) bool) {
	s.beforeDelete = func(m sqstypes.Message) bool { return f(*m.Body) }
}
