package plugin

import (
	"crypto/sha256"
	"encoding/hex"
)

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}
