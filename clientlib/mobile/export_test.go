package mobile

// WrapForTest exposes wrap to the external tests.
var WrapForTest = func(err error) error { return wrap(err, nil) }
