// Story drives the gomobile bindings of clientlib/mobile from Java, the way
// an Android app would, against a real cofferd. clientlib/mobile's
// TestJVMStory builds the bindings for the desktop JVM, starts the server
// and runs it:
//
//	java -Djava.library.path=DIR -cp CLASSES Story SERVER_URL WORK_DIR
//
// When the story needs the server to misbehave, it prints
// "TAMPER <group> <account>" and waits for a line on stdin; the test then
// rewrites the database as a malicious server would. The last line of a
// successful run is "PASS".

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import mobile.Cancel;
import mobile.Client;
import mobile.Contact;
import mobile.ContactList;
import mobile.Group;
import mobile.GroupList;
import mobile.GroupOptions;
import mobile.KeyStore;
import mobile.Member;
import mobile.MemberList;
import mobile.Meta;
import mobile.Mobile;
import mobile.Progress;
import mobile.Resource;
import mobile.ResourceList;

public final class Story {
	// MemoryKeyStore is the simplest KeyStore an app could write: absent
	// names give null. Go calls it from several threads at once.
	static final class MemoryKeyStore implements KeyStore {
		private final Map<String, byte[]> blobs = new HashMap<>();

		@Override public synchronized void put(String name, byte[] value) { blobs.put(name, value.clone()); }
		@Override public synchronized byte[] get(String name) { return blobs.get(name); }
		@Override public synchronized void delete(String name) { blobs.remove(name); }
	}

	// BrokenKeyStore fails like a locked keychain.
	static final class BrokenKeyStore implements KeyStore {
		@Override public void put(String name, byte[] value) throws Exception { throw new Exception("keychain is locked"); }
		@Override public byte[] get(String name) throws Exception { throw new Exception("keychain is locked"); }
		@Override public void delete(String name) throws Exception { throw new Exception("keychain is locked"); }
	}

	// Counter records progress callbacks, which arrive on Go threads.
	static final class Counter implements Progress {
		final AtomicLong calls = new AtomicLong(), done = new AtomicLong(), total = new AtomicLong();
		final long cancelAfter;
		final Cancel cancel;

		Counter() { this(0, null); }
		Counter(long cancelAfter, Cancel cancel) { this.cancelAfter = cancelAfter; this.cancel = cancel; }

		@Override public void onProgress(long d, long t) throws Exception {
			calls.incrementAndGet();
			done.set(d);
			total.set(t);
			if (cancel != null && d >= cancelAfter) {
				cancel.cancel(); // as a "Cancel" button would, from any thread
			}
		}
	}

	interface Call { void run() throws Exception; }

	static int checks = 0;

	static void check(boolean ok, String what) {
		checks++;
		if (!ok) {
			throw new AssertionError("FAILED: " + what);
		}
	}

	// expectCode runs call, which must throw an exception carrying code,
	// both in its message ("coffer:<code>: ...") and through
	// Mobile.errorCode.
	static Exception expectCode(String code, Call call) {
		try {
			call.run();
		} catch (Exception e) {
			String msg = e.getMessage();
			check(code.equals(Mobile.errorCode(e)), "want code " + code + ", got " + Mobile.errorCode(e) + ": " + msg);
			check(msg != null && msg.startsWith("coffer:" + code + ": "), "message carries the code: " + msg);
			check(!Mobile.errorMessage(e).startsWith("coffer:"), "errorMessage drops the prefix: " + Mobile.errorMessage(e));
			System.out.println("  ok: " + code + " <- " + msg);
			return e;
		}
		throw new AssertionError("FAILED: no exception, want code " + code);
	}

	static void step(String s) { System.out.println("STEP " + s); }

	// main exits explicitly: threads that Go attached to the JVM for
	// callbacks are not daemon threads, so returning from main (or an
	// uncaught exception) would leave the JVM running.
	public static void main(String[] args) {
		try {
			story(args);
		} catch (Throwable t) {
			t.printStackTrace();
			System.out.println("FAIL");
			System.exit(1);
		}
		System.exit(0);
	}

	static void story(String[] args) throws Exception {
		String url = args[0];
		Path work = Paths.get(args[1]);
		BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

		step("register two users");
		MemoryKeyStore aliceKeys = new MemoryKeyStore();
		Client alice = Mobile.newClient(url, aliceKeys);
		Client bob = new Client(url, new MemoryKeyStore()); // constructor form
		check(!alice.hasIdentity(), "a fresh store has no identity");
		alice.register("alice");
		bob.register("bob");
		check(alice.hasIdentity() && alice.handle().equals("alice"), "handle");
		check(!alice.accountID().isEmpty(), "account id");
		alice.login();
		String aliceSN = alice.safetyNumber(), bobSN = bob.safetyNumber();
		check(aliceSN.matches("\\d{5}( \\d{5}){11}"), "safety number format: " + aliceSN);
		check(alice.qrPayload().startsWith("coffer:v1:alice:"), "QR payload: " + alice.qrPayload());
		expectCode(Mobile.CodeConflict, () -> new Client(url, new MemoryKeyStore()).register("alice"));

		step("verify each other");
		expectCode(Mobile.CodeInvalid, () -> alice.verify("bob", "11111 11111 11111 11111 11111 11111 11111 11111 11111 11111 11111 11111"));
		Contact bobContact = alice.verify("bob", bobSN.replace(" ", ""));
		check(bobContact.getState().equals(Mobile.StateVerified), "bob is verified: " + bobContact.getState());
		check(bobContact.getSafetyNumber().equals(bobSN), "bob's safety number");
		Contact aliceContact = bob.verify("alice", alice.qrPayload()); // scanned
		check(aliceContact.getAccountID().equals(alice.accountID()), "alice's account");
		ContactList contacts = alice.contacts();
		check(contacts.len() == 1 && contacts.get(0).getHandle().equals("bob"), "alice's contact list");
		expectCode(Mobile.CodeInvalid, () -> contacts.get(5));
		expectCode(Mobile.CodeNotFound, () -> alice.contact("carol"));

		step("create a group and add a member");
		GroupOptions opts = new GroupOptions();
		opts.setDescription("launch plans");
		String group = alice.createGroup("project x", opts);
		alice.addMember(group, "bob", Mobile.RoleWriter);
		MemberList members = alice.members(group);
		check(members.len() == 2, "two members: " + members.len());
		for (long i = 0; i < members.len(); i++) {
			Member m = members.get(i);
			check(m.getTrust().equals(Mobile.StateVerified), m.getHandle() + " is trusted");
		}
		GroupList groups = bob.groups();
		check(groups.len() == 1, "bob has one group");
		Group g = groups.get(0);
		check(g.getName().equals("project x") && g.getDescription().equals("launch plans"), "decrypted group name");
		check(g.getRole().equals(Mobile.RoleWriter) && g.getEpoch() == 1, "bob's role and epoch");
		String json = new String(groups.json(), StandardCharsets.UTF_8);
		check(json.contains("\"name\":\"project x\""), "groups as JSON: " + json);

		step("put with progress, get and compare");
		byte[] data = new byte[300 * 1024 + 7];
		new SecureRandom().nextBytes(data);
		Meta meta = new Meta();
		meta.setName("report.pdf");
		meta.setContentType("application/pdf");
		meta.setAppJSON("{\"pages\":3}");
		Counter up = new Counter();
		Resource r = alice.putBytes(group, data, meta, up, new Cancel());
		check(up.calls.get() >= 2, "several progress callbacks: " + up.calls.get());
		check(up.done.get() == data.length && up.total.get() == data.length, "progress reached the total: " + up.done.get() + "/" + up.total.get());
		check(r.getVersion() == 1 && r.getSize() == data.length && r.getAuthorHandle().equals("alice"), "put result");
		Counter down = new Counter();
		byte[] got = bob.getBytes(group, r.getID(), down, null);
		check(Arrays.equals(got, data), "bob reads the same bytes");
		check(down.done.get() == data.length, "download progress: " + down.done.get());
		Resource head = bob.head(group, r.getID());
		check(head.getName().equals("report.pdf") && head.getAppJSON().equals("{\"pages\":3}"), "decrypted metadata");

		step("files both ways");
		Path in = work.resolve("in.bin"), out = work.resolve("out.bin");
		Files.write(in, Arrays.copyOf(data, 100_000));
		Meta fileMeta = new Meta();
		fileMeta.setName("in.bin");
		Resource fr = bob.putFile(group, in.toString(), fileMeta, null, null);
		alice.getFile(group, fr.getID(), out.toString(), null, null);
		check(Arrays.equals(Files.readAllBytes(out), Files.readAllBytes(in)), "file round trip");
		expectCode(Mobile.CodeIO, () -> bob.putFile(group, work.resolve("missing").toString(), fileMeta, null, null));
		ResourceList list = bob.list(group);
		check(list.len() == 2, "two resources listed: " + list.len());
		check(new String(list.json(), StandardCharsets.UTF_8).contains("\"name\":\"report.pdf\""), "resources as JSON");

		step("timing: 1 MiB put and get through Java");
		byte[] mib = new byte[1 << 20];
		new SecureRandom().nextBytes(mib);
		Meta benchMeta = new Meta();
		benchMeta.setName("bench.bin");
		for (int i = 0; i < 3; i++) { // warm up
			alice.getBytes(group, alice.putBytes(group, mib, benchMeta, null, null).getID(), null, null);
		}
		final int ops = 20;
		long t0 = System.nanoTime();
		for (int i = 0; i < ops; i++) {
			byte[] back = alice.getBytes(group, alice.putBytes(group, mib, benchMeta, null, null).getID(), null, null);
			check(back.length == mib.length, "1 MiB round trip");
		}
		System.out.printf("TIMING java putBytes+getBytes 1MiB: %.2f ms/op (%d ops)%n", (System.nanoTime() - t0) / 1e6 / ops, ops);

		step("cancel");
		Cancel cancelled = new Cancel();
		cancelled.cancel();
		check(cancelled.isCanceled(), "isCanceled");
		expectCode(Mobile.CodeCanceled, () -> alice.putBytes(group, data, meta, null, cancelled));
		byte[] big = new byte[4 << 20];
		Cancel midway = new Cancel();
		Counter stopper = new Counter(256 * 1024, midway);
		expectCode(Mobile.CodeCanceled, () -> alice.putBytes(group, big, meta, stopper, midway));
		check(stopper.done.get() < big.length, "the upload stopped early: " + stopper.done.get());
		Progress thrower = (d, t) -> { throw new Exception("user closed the screen"); };
		Exception e = expectCode(Mobile.CodeCanceled, () -> alice.putBytes(group, data, meta, thrower, null));
		check(e.getMessage().contains("user closed the screen"), "the callback's exception is the cause: " + e.getMessage());

		step("the app's key store fails");
		expectCode(Mobile.CodeKeyStore, () -> Mobile.newClient(url, new BrokenKeyStore()));

		step("remove the member; their next get fails");
		alice.removeMember(group, "bob");
		expectCode(Mobile.CodeNotFound, () -> bob.getBytes(group, r.getID(), null, null));
		check(alice.group(group).getEpoch() == 2, "removal rotated the key");

		step("an account with two devices: link one, then revoke the other");
		MemoryKeyStore phoneKeys = new MemoryKeyStore();
		Client carolPhone = Mobile.newClient(url, phoneKeys);
		String words = carolPhone.createAccount("carol", "carol-phone");
		check(words.trim().split("\\s+").length == 24, "24 recovery words");
		String carolSN = carolPhone.safetyNumber();
		Client carolTablet = Mobile.newClient(url, new MemoryKeyStore());
		mobile.DeviceLink link = carolTablet.startDeviceLink("carol", "carol-tablet");
		String code = link.code();
		check(code.matches("[A-Z2-7]{4}(-[A-Z2-7]{4}){3}"), "pairing code format: " + code.length() + " characters");
		check(carolPhone.approveDeviceLink(code).equals("carol-tablet"), "the phone approved the tablet");
		link.awaitApproval(60, null);
		check(carolTablet.safetyNumber().equals(carolSN), "one account, one safety number, on both devices");
		String devices = carolTablet.devicesJSON();
		check(devices.contains("\"carol-phone\"") && devices.contains("\"carol-tablet\""), "both devices listed: " + devices);
		String carolGroup = carolPhone.createGroup("carol's notes", new GroupOptions());
		Meta noteMeta = new Meta();
		noteMeta.setName("before.txt");
		Resource before = carolPhone.putBytes(carolGroup, "written on the phone".getBytes(StandardCharsets.UTF_8), noteMeta, null, null);
		check(new String(carolTablet.getBytes(carolGroup, before.getID(), null, null), StandardCharsets.UTF_8).equals("written on the phone"), "the tablet reads the phone's note");
		carolTablet.revokeDevice("carol-phone");
		noteMeta.setName("after.txt");
		Resource after = carolTablet.putBytes(carolGroup, "after the phone was lost".getBytes(StandardCharsets.UTF_8), noteMeta, null, null);
		check(carolTablet.safetyNumber().equals(carolSN), "the revocation kept the safety number");
		Client lostPhone = Mobile.newClient(url, phoneKeys); // what a thief has
		expectCode(Mobile.CodeUnauthorized, () -> lostPhone.getBytes(carolGroup, after.getID(), null, null));
		check(!carolTablet.devicesJSON().contains("carol-phone"), "the phone is gone from the list");

		step("a misbehaving server is a security exception");
		System.out.println("TAMPER " + group + " " + alice.accountID());
		System.out.flush();
		check("DONE".equals(stdin.readLine()), "the test tampered");
		Client fresh = Mobile.newClient(url, aliceKeys); // same keys, no cached group keys
		check(fresh.hasIdentity() && fresh.handle().equals("alice"), "identity reloaded from the KeyStore");
		Exception sec = expectCode(Mobile.CodeSecurity, () -> fresh.group(group));
		check(sec.getMessage().contains("misbehaved"), "security message: " + sec.getMessage());

		System.out.println(checks + " checks");
		System.out.println("PASS");
	}
}
