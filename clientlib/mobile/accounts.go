package mobile

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cofferhq/coffer/clientlib"
)

// Suite v2 accounts: devices, recovery. An app creates the account on the
// first device (CreateAccount, which returns the recovery words to show
// once), links more devices with a pairing code (StartDeviceLink on the new
// device, ApproveDeviceLink on one the account has), revokes lost ones
// (RevokeDevice), and restores access from the words alone (Recover). The
// private keys of each device stay in its KeyStore (on a phone, behind the
// Keychain or the Keystore; see docs/MOBILE.md).

// CreateAccount creates an account for handle with this device, named
// deviceName, as its first device, registers it and logs in. It returns
// the recovery key as 24 words: show them once, with a QR code of the same
// line, and never store them.
func (c *Client) CreateAccount(handle, deviceName string) (words string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	rk, err := cl.CreateAccount(bg(), handle, deviceName)
	if err != nil {
		return "", wrap(err, nil)
	}
	return rk.Words(), nil
}

// DeviceLink is a new device waiting for its pairing code to be approved.
type DeviceLink struct {
	p *clientlib.PendingLink
}

// Code is the pairing code to show on the new device.
func (l *DeviceLink) Code() string {
	defer guardQuiet()
	if l == nil || l.p == nil {
		return ""
	}
	return l.p.Code()
}

// AwaitApproval blocks until the code is approved on another device of the account
// and this device is linked and logged in, or until timeoutSeconds pass, or
// cancel is cancelled.
func (l *DeviceLink) AwaitApproval(timeoutSeconds int64, cancel *Cancel) (err error) {
	defer guard(&err)
	if l == nil || l.p == nil {
		return newError(CodeInvalid, "the DeviceLink was not made by StartDeviceLink")
	}
	ctx := cancel.context()
	if timeoutSeconds > 0 {
		var done context.CancelFunc
		ctx, done = context.WithTimeout(ctx, time.Duration(timeoutSeconds)*time.Second)
		defer done()
	}
	return wrap(l.p.Wait(ctx, time.Second), ctx)
}

// StartDeviceLink begins linking this device (with an empty KeyStore) to
// the account of handle. Show Code(), then call AwaitApproval.
func (c *Client) StartDeviceLink(handle, deviceName string) (l *DeviceLink, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	p, err := cl.StartDeviceLink(bg(), handle, deviceName)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return &DeviceLink{p: p}, nil
}

// ApproveDeviceLink approves a pairing code that a new device of this
// account shows, and returns that device's name.
func (c *Client) ApproveDeviceLink(code string) (name string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	name, err = cl.ApproveDeviceLink(bg(), code)
	return name, wrap(err, nil)
}

// RevokeDevice revokes the device with that name (or id) from the account:
// the account gets a new user key, and this device updates its keys in
// every group, so the revoked device reads nothing written afterwards.
func (c *Client) RevokeDevice(name string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	return wrap(cl.RevokeDevice(bg(), name), nil)
}

// Recover adds this device (with an empty KeyStore) to the account of
// handle with the recovery words alone, then replaces the recovery key and
// returns the new words to show once.
func (c *Client) Recover(handle, words, deviceName string) (newWords string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	rk, err := cl.Recover(bg(), handle, words, deviceName)
	if err != nil {
		return "", wrap(err, nil)
	}
	return rk.Words(), nil
}

// RotateRecoveryKey replaces the recovery key and returns the new words.
func (c *Client) RotateRecoveryKey() (words string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	rk, err := cl.RotateRecoveryKey(bg())
	if err != nil {
		return "", wrap(err, nil)
	}
	return rk.Words(), nil
}

// DevicesJSON lists the account's devices as a JSON array of
// {"name", "id", "added" (RFC 3339), "current"}.
func (c *Client) DevicesJSON() (js string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	ds, err := cl.Devices(bg())
	if err != nil {
		return "", wrap(err, nil)
	}
	type row struct {
		Name    string    `json:"name"`
		ID      string    `json:"id"`
		Added   time.Time `json:"added"`
		Current bool      `json:"current"`
	}
	rows := make([]row, len(ds))
	for i, d := range ds {
		rows[i] = row{d.Name, d.ID.String(), d.Added, d.Current}
	}
	b, err := json.Marshal(rows)
	return string(b), err
}
