package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// UserInfo is an authenticated identity.
type UserInfo struct {
	Name, UID string
	Groups    []string
	// Extra holds further attributes of the user, such as the pod a service-account token
	// is bound to (authentication.kubernetes.io/pod-name).
	Extra map[string][]string
}

// UserFromCertificate reads the identity of a verified client certificate the
// way kube-apiserver does: CN is the user name, O are the groups.
func UserFromCertificate(cert *x509.Certificate) UserInfo {
	return UserInfo{Name: cert.Subject.CommonName, Groups: slices.Clone(cert.Subject.Organization)}
}

// TokenAuthenticator maps static bearer tokens to users.
type TokenAuthenticator struct {
	entries []tokenEntry
}

type tokenEntry struct {
	token string
	// Comparing fixed-size digests keeps the comparison's time independent of
	// the presented token's length.
	digest [sha256.Size]byte
	user   UserInfo
}

// LoadTokenFile reads a kube-apiserver static token file: CSV lines of
// token,user,uid[,"group1,group2"]. Blank lines and lines starting with '#'
// are skipped; any other malformed line fails the load with its line number.
func LoadTokenFile(path string) (*TokenAuthenticator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := parseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return a, nil
}

func parseTokens(r io.Reader) (*TokenAuthenticator, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	firstSeen := map[string]int{}
	a := &TokenAuthenticator{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			return nil, err // a *csv.ParseError, which names the line
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		switch {
		case len(rec) == 1 && rec[0] == "":
			continue // whitespace-only line
		case len(rec) < 3:
			return nil, fmt.Errorf("line %d: want token,user,uid[,\"groups\"], got %d field(s)", line, len(rec))
		case rec[0] == "":
			return nil, fmt.Errorf("line %d: empty token", line)
		case rec[1] == "":
			return nil, fmt.Errorf("line %d: empty user name", line)
		}
		if first, dup := firstSeen[rec[0]]; dup {
			return nil, fmt.Errorf("line %d: token already used on line %d", line, first)
		}
		firstSeen[rec[0]] = line
		e := tokenEntry{token: rec[0], digest: sha256.Sum256([]byte(rec[0])), user: UserInfo{Name: rec[1], UID: rec[2]}}
		if len(rec) > 3 {
			for g := range strings.SplitSeq(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					e.user.Groups = append(e.user.Groups, g)
				}
			}
		}
		a.entries = append(a.entries, e)
	}
}

// Authenticate returns the user owning token. Every entry is compared in
// constant time, so timing does not reveal how much of a token matched.
func (a *TokenAuthenticator) Authenticate(token string) (UserInfo, bool) {
	if a == nil || token == "" {
		return UserInfo{}, false
	}
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range a.entries {
		if subtle.ConstantTimeCompare(digest[:], a.entries[i].digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return UserInfo{}, false
	}
	u := a.entries[match].user
	u.Groups = slices.Clone(u.Groups)
	return u, true
}

// EnsureTokenFile creates a token file at path holding one random token for
// AdminUser in MastersGroup, and returns that token. If the file exists it is
// left alone and the first token in MastersGroup is returned, or "" if there
// is none.
func EnsureTokenFile(path string) (string, error) {
	a, err := LoadTokenFile(path)
	if err == nil {
		for _, e := range a.entries {
			if slices.Contains(e.user.Groups, MastersGroup) {
				return e.token, nil
			}
		}
		return "", nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	token := hex.EncodeToString(raw)
	line := fmt.Sprintf("%s,%s,%s,%q\n", token, AdminUser, AdminUser, MastersGroup)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := WriteFileAtomic(path, []byte(line), 0o600); err != nil {
		return "", err
	}
	return token, nil
}
