package clientlib_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// These examples talk to a Coffer server, so they are compiled but not run.

// An app opens its key store once and creates a client for its server. On
// later starts the client finds the identity and session already there.
func ExampleNew() {
	dir, err := os.UserConfigDir()
	if err != nil {
		log.Fatal(err)
	}
	// On iOS or Android, implement clientlib.KeyStore on the Keychain or the
	// Android Keystore instead.
	ks, err := clientlib.NewFileKeyStore(filepath.Join(dir, "myapp", "coffer"))
	if err != nil {
		log.Fatal(err)
	}
	client, err := clientlib.New("https://coffer.example.com", ks, nil)
	if err != nil {
		log.Fatal(err)
	}
	if client.Identity() == nil {
		fmt.Println("first start: register an account")
		return
	}
	fmt.Println("signed in as", client.Identity().Handle())
}

// Register creates the device's keys, registers the public identity and
// logs in. The app then shows the safety number, which contacts compare
// out of band before they share anything with this account.
func ExampleClient_Register() {
	ctx := context.Background()
	client, err := clientlib.New("https://coffer.example.com", clientlib.NewMemoryKeyStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	switch err := client.Register(ctx, "alice"); coffer.ErrorCode(err) {
	case "":
	case coffer.ECONFLICT:
		log.Fatal("the handle alice is taken: choose another")
	default:
		log.Fatal(err)
	}
	fmt.Println("account:", client.AccountID())
	fmt.Println("safety number:", client.Identity().SafetyNumber())
	fmt.Println("QR code payload:", client.Identity().QRPayload())
}

// A group owner creates a group, verifies a contact's safety number (read
// to them in person or over a call, never taken from the server) and adds
// them. Their client then reads the group's key from its own wrap.
func ExampleClient_CreateGroup() {
	ctx := context.Background()
	ks, err := clientlib.NewFileKeyStore("alice-keys")
	if err != nil {
		log.Fatal(err)
	}
	alice, err := clientlib.New("https://coffer.example.com", ks, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.Login(ctx); err != nil {
		log.Fatal(err)
	}

	g, err := alice.CreateGroup(ctx, "Family photos", &clientlib.GroupOptions{
		Description: "Shared with the whole family",
	})
	if err != nil {
		log.Fatal(err)
	}

	// The code Bob read out from his own device.
	const bobsCode = "20990 95980 71343 15629 13196 99225 10189 43828 04460 31310 94141 24306"
	if _, err := alice.Verify(ctx, "bob", bobsCode); err != nil {
		log.Fatal(err) // a mismatch means the server may be substituting keys
	}
	if err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter); err != nil {
		log.Fatal(err)
	}

	members, err := alice.Members(ctx, g)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range members {
		fmt.Println(m.Handle, m.Role, m.Trust)
	}
}
