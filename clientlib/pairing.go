package clientlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/userkey"
)

// Linking a device (suite v2). The new device draws a pairing code, posts
// its keys under the code's id with the code's MAC, and shows the code.
// The user types it on a device the account already has, which checks the
// MAC (the keys are the ones the new device showed), builds and signs an
// add-device link that wraps the user key to the new device, and posts it
// as the approval with its own MAC. The new device checks that MAC (the
// approval came from whoever holds the code), verifies the account chain
// from its genesis with the link on top, co-signs the link, appends it,
// opens its wrap and logs in. The server relays and stores; it learns
// neither the code nor any key (coffer/pairing.go).

// PendingLink is a new device waiting for its pairing code to be approved.
type PendingLink struct {
	c      *Client
	code   *coffer.PairingCode
	handle coffer.Handle
	dev    *device
}

// Code is the pairing code to show the user.
func (p *PendingLink) Code() string { return p.code.Reveal() }

// StartDeviceLink begins linking this device, whose key store must be
// empty, to the account of handle.
func (c *Client) StartDeviceLink(ctx context.Context, handle, deviceName string) (*PendingLink, error) {
	h, err := coffer.ParseHandle(handle)
	if err != nil {
		return nil, err
	}
	if c.holdsAccount() {
		return nil, errHoldsAccount()
	}
	dev, err := newDevice(deviceName)
	if err != nil {
		return nil, err
	}
	c.observeSecret("device-seed", dev.seed)
	code := coffer.NewPairingCode()
	k := dev.keys()
	var resp api.CreatePairingResponse
	err = c.call(ctx, http.MethodPost, "/v1/pairings", false, api.CreatePairingRequest{
		ID: code.ID(), Handle: h, MAC: code.RequestMAC(h, k),
		Device: api.PairingDevice{ID: k.ID, Name: k.Name, SigningKey: k.SigningKey.Bytes(), EncryptionKey: k.EncryptionKey},
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &PendingLink{c: c, code: code, handle: h, dev: dev}, nil
}

// Wait polls until the code is approved, then completes the link: when it
// returns nil, this device is a device of the account, logged in, and
// reads the account's groups. It gives up when ctx ends or the pairing
// expires.
func (p *PendingLink) Wait(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = time.Second
	}
	for {
		var pr api.Pairing
		err := p.c.call(ctx, http.MethodGet, "/v1/pairings/"+p.code.ID(), false, nil, &pr)
		if coffer.ErrorCode(err) == coffer.ENOTFOUND {
			return coffer.Errorf(coffer.ENOTFOUND, "the pairing expired before it was approved: start again")
		}
		if err != nil {
			return err
		}
		if pr.Approval != nil {
			return p.complete(ctx, pr.Approval)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

func (p *PendingLink) complete(ctx context.Context, ap *api.PairingApproval) error {
	c := p.c
	body := ap.Link.Body
	if err := p.code.CheckApprovalMAC(body, ap.MAC); err != nil {
		return err
	}
	l, err := coffer.ParseAccountLink(body)
	if err != nil {
		return coffer.Security("pairing", fmt.Errorf("the approval does not parse: %w", err))
	}
	want := p.dev.keys()
	if l.Kind != coffer.LinkAddDevice || l.Device.ID != want.ID || l.Device.Name != want.Name ||
		!bytes.Equal(l.Device.SigningKey.Bytes(), want.SigningKey.Bytes()) || !bytes.Equal(l.Device.EncryptionKey, want.EncryptionKey) {
		return coffer.Security("pairing", errors.New("the approval does not add this device"))
	}
	state, links, err := c.fetchChain(ctx, p.handle)
	if err != nil {
		return err
	}
	if state.Account != l.Account {
		return coffer.Security("pairing", fmt.Errorf("the approval is for account %s; %s is %s", l.Account, p.handle, state.Account))
	}
	sl := coffer.SignedLink{Body: body, Signature: ap.Link.Signature, DeviceSignature: p.dev.sign.Sign(coffer.LabelAccountLinkDevice, body)}
	next, err := coffer.VerifyAccountChain(state, []coffer.SignedLink{sl})
	if err != nil {
		return coffer.Security("pairing", err)
	}
	w, _ := l.WrapFor(p.dev.id)
	uk, err := userkey.Open(p.dev.dec, next.Account, next.UserKeyGeneration, userkey.Recipient{Device: p.dev.id}, w, next.UserKey)
	if err != nil {
		return err
	}
	c.observeUserKey(uk)
	keys := userKeyring{next.UserKeyGeneration: uk}
	if err := walkBack(next.Account, links, keys); err != nil {
		return err
	}
	if err := c.ks.Put(ksDevice, p.dev.marshal()); err != nil {
		return err
	}
	if err := c.appendLink(ctx, next.Account, sl, nil); err != nil {
		return err
	}
	if err := c.saveAccount(&accountSelf{dev: p.dev, state: next, keys: keys}); err != nil {
		return err
	}
	if err := c.Login(ctx); err != nil {
		return err
	}
	// Linked: now start from what the account's devices verified.
	return c.adoptDeviceState(ctx)
}

// ApproveDeviceLink approves a pairing code shown by a new device of this
// account, after checking that the keys the server relays are the ones
// that device showed. It returns the name of the device it approved.
func (c *Client) ApproveDeviceLink(ctx context.Context, code string) (string, error) {
	pc, err := coffer.ParsePairingCode(code)
	if err != nil {
		return "", err
	}
	a, err := c.syncAccount(ctx)
	if err != nil {
		return "", err
	}
	var pr api.Pairing
	if err := c.call(ctx, http.MethodGet, "/v1/pairings/"+pc.ID(), false, nil, &pr); err != nil {
		if coffer.ErrorCode(err) == coffer.ENOTFOUND {
			return "", coffer.Errorf(coffer.ENOTFOUND, "no open pairing has this code: check it, or start linking again on the new device")
		}
		return "", err
	}
	if pr.Handle != a.state.Handle {
		return "", coffer.Errorf(coffer.EINVALID, "this code is for %s, not for this account (%s)", pr.Handle, a.state.Handle)
	}
	sk, err := coffer.ParseHybridPublicKey(pr.Device.SigningKey)
	if err != nil {
		return "", coffer.Security("pairing", err)
	}
	dk := coffer.DeviceKeys{ID: pr.Device.ID, Name: pr.Device.Name, SigningKey: sk, EncryptionKey: pr.Device.EncryptionKey}
	if err := pc.CheckRequestMAC(pr.Handle, dk, pr.MAC); err != nil {
		return "", err
	}
	gen, uk := a.keys.newest()
	w, err := userkey.Seal(dk.EncryptionKey, a.state.Account, gen, userkey.Recipient{Device: dk.ID}, uk)
	if err != nil {
		return "", err
	}
	l := a.nextLink(coffer.LinkAddDevice)
	l.Device, l.DeviceWraps = dk, []coffer.DeviceWrap{{Device: dk.ID, Wrap: w}}
	body := l.Marshal()
	if _, err := coffer.ParseAccountLink(body); err != nil {
		return "", coffer.Security("pairing", fmt.Errorf("the new device's keys do not make a valid link: %w", err))
	}
	sig := a.dev.sign.Sign(coffer.LabelAccountLink, body)
	err = c.call(ctx, http.MethodPut, "/v1/pairings/"+pc.ID()+"/approval", true, api.PairingApproval{
		Link: api.SignedLink{Body: body, Signature: sig}, MAC: pc.ApprovalMAC(body),
	}, nil)
	if err != nil {
		return "", err
	}
	return dk.Name, nil
}
