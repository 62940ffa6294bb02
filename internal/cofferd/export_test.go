package cofferd

// LockDataDirForTest takes the dev-mode data directory lock and returns its
// release.
func LockDataDirForTest(dir string) (release func(), err error) {
	l, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	return func() { l.release() }, nil
}
