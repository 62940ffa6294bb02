package cofferd

import "fmt"

// GenerateKeyFiles creates an Ed25519 PKCS#8 PEM key at each path that does
// not exist yet (`cofferd genkey`), so container set-ups can make the
// access-token and log keys once, on a volume, before the server starts.
// Existing files are left alone: rerunning never rotates a key by accident.
func GenerateKeyFiles(paths ...string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("genkey: name at least one key file")
	}
	var created []string
	for _, p := range paths {
		ok, err := ensureKeyFile(p)
		if err != nil {
			return created, fmt.Errorf("genkey %s: %w", p, err)
		}
		if ok {
			created = append(created, p)
		}
	}
	return created, nil
}
