package event

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// Origin is where a record entered the pipeline: the intake stream's identity and the
// record's position in it. Every event derived from the same stored record has the same
// Origin, whether it is processed once, redelivered after a crash, or replayed from the
// dead-letter queue (which carries the Origin along).
type Origin struct {
	// Epoch identifies the intake stream's lifetime (its creation time in Unix
	// nanoseconds), so that sequences of a recreated stream never collide with old ones.
	Epoch int64
	// Seq is the intake stream sequence of the message that holds the record.
	Seq uint64
	// Index is the record's position within that message.
	Index uint32
}

// IDLen is the length of a derived event ID.
const IDLen = 20

// DeriveID returns the deterministic event ID of the sub-th event parsed from the
// record at o: 20 URL-safe base64 characters (120 bits of SHA-256), the same length as
// Elasticsearch's own IDs.
func DeriveID(o Origin, sub uint32) string {
	var id [IDLen]byte
	return string(AppendID(id[:0], o, sub))
}

// AppendID appends DeriveID(o, sub) to dst, without allocating when dst has room.
func AppendID(dst []byte, o Origin, sub uint32) []byte {
	var buf [8 + 8 + 4 + 4]byte
	binary.BigEndian.PutUint64(buf[0:], uint64(o.Epoch))
	binary.BigEndian.PutUint64(buf[8:], o.Seq)
	binary.BigEndian.PutUint32(buf[16:], o.Index)
	binary.BigEndian.PutUint32(buf[20:], sub)
	sum := sha256.Sum256(buf[:])
	return base64.RawURLEncoding.AppendEncode(dst, sum[:15])
}
