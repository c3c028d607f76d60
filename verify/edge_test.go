package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	ved25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// The edge vectors below follow the categories of C2SP's ed25519vectors
// (github.com/C2SP/CCTV/tree/main/ed25519vectors) and of "Taming the many
// EdDSAs" (Chalkias et al., 2020): small-order and mixed-order R and A,
// non-canonical encodings of R and A, and non-canonical S. They are not copied
// from those files, which use keys we do not hold: each is built here from
// voi's and the standard library's primitives, with the relay key of the tests
// where a signature needs the private key, so the table shows what the relay
// itself could send.

// smallOrderPoints are the canonical encodings of the eight points of order
// 1, 2, 4 and 8 (the torsion subgroup E[8]), as listed in the papers above.
var smallOrderPoints = []struct{ name, hex string }{
	{"identity (order 1)", "0100000000000000000000000000000000000000000000000000000000000000"},
	{"order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"order 4, x positive", "0000000000000000000000000000000000000000000000000000000000000000"},
	{"order 4, x negative", "0000000000000000000000000000000000000000000000000000000000000080"},
	{"order 8 (a)", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"},
	{"order 8 (b)", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"},
	{"order 8 (c)", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"},
	{"order 8 (d)", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"},
}

// nonCanonicalSmallOrder are non-canonical encodings of small-order points:
// y >= p (p, p+1 encode y = 0, 1) and the sign bit set where x = 0. These are
// the only non-canonical encodings of small-order points.
var nonCanonicalSmallOrder = []struct{ name, hex string }{
	{"identity with the sign bit set", "0100000000000000000000000000000000000000000000000000000000000080"},
	{"order 2 with the sign bit set", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
	{"y = p (order 4, as y = 0)", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"y = p, sign bit set", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
	{"y = p+1 (the identity, as y = 1)", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"y = p+1, sign bit set", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
}

// notOnCurve is a y for which no x exists (found by trying small y).
const notOnCurve = "0200000000000000000000000000000000000000000000000000000000000000"

// groupOrder is L, little-endian.
var groupOrder = mustDecodeHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")

func mustDecodeHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// edgeSigner builds signatures with a chosen R under the relay test key.
type edgeSigner struct {
	priv ed25519.PrivateKey
	pub  []byte
	a    scalar.Scalar // the secret scalar: clamped SHA-512(seed)[:32] mod L
	ts   []byte
	body []byte
	msg  []byte
}

func newEdgeSigner(t testing.TB) *edgeSigner {
	t.Helper()
	priv := testKey("relay")
	s := &edgeSigner{priv: priv, pub: priv.Public().(ed25519.PublicKey), ts: []byte("1700000000"), body: []byte(`{"message":"edge"}`)}
	h := sha512.Sum512(priv.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	if _, err := s.a.SetBytesModOrder(h[:32]); err != nil {
		t.Fatal(err)
	}
	s.msg = AppendMessage(nil, s.ts, s.body)
	return s
}

func scalarFrom(t testing.TB, seed string) scalar.Scalar {
	t.Helper()
	h := sha512.Sum512([]byte(seed))
	var s scalar.Scalar
	if _, err := s.SetBytesModOrderWide(h[:]); err != nil {
		t.Fatal(err)
	}
	return s
}

// challenge returns k = SHA-512(R || A || M) mod L.
func challenge(t testing.TB, r, a, m []byte) scalar.Scalar {
	t.Helper()
	h := sha512.New()
	h.Write(r)
	h.Write(a)
	h.Write(m)
	var k scalar.Scalar
	if _, err := k.SetBytesModOrderWide(h.Sum(nil)); err != nil {
		t.Fatal(err)
	}
	return k
}

// sign returns R || S with S = rs + k*a, for an R given as bytes: rs is the
// discrete log of R's prime-order part (0 for a small-order R), so the
// signature satisfies [S]B - [k]A - R = -(R's small-order part).
func (s *edgeSigner) sign(t testing.TB, rBytes []byte, rs *scalar.Scalar) []byte {
	t.Helper()
	k := challenge(t, rBytes, s.pub, s.msg)
	var S scalar.Scalar
	S.Mul(&k, &s.a)
	S.Add(&S, rs)
	sig := append([]byte(nil), rBytes...)
	sig = append(sig, make([]byte, 32)...)
	if err := S.ToBytes(sig[32:]); err != nil {
		t.Fatal(err)
	}
	return sig
}

// pointPlus returns the encoding of [r]B + T for T given as bytes.
func pointPlus(t testing.TB, r *scalar.Scalar, tHex string) []byte {
	t.Helper()
	var enc curve.CompressedEdwardsY
	copy(enc[:], mustDecodeHex(tHex))
	var T, P curve.EdwardsPoint
	if _, err := T.SetCompressedY(&enc); err != nil {
		t.Fatal(err)
	}
	P.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
	P.Add(&P, &T)
	enc.SetEdwardsPoint(&P)
	return enc[:]
}

// addL returns the little-endian 256-bit sum S + L (no reduction).
func addL(s []byte) []byte {
	out := make([]byte, 32)
	carry := 0
	for i := range 32 {
		v := int(s[i]) + int(groupOrder[i]) + carry
		out[i], carry = byte(v), v>>8
	}
	return out
}

type edgeVector struct {
	name       string
	sig        []byte
	wantStdlib bool // crypto/ed25519.Verify
	wantRelay  bool // Relay.Verify, alone or in any batch
}

// relayEdgeVectors returns signatures under the relay test key over s.msg.
// wantRelay differs from wantStdlib exactly where R has a small-order
// component other than the identity: the cofactored equation ignores it, the
// standard library's cofactorless one does not.
func relayEdgeVectors(t testing.TB, s *edgeSigner) []edgeVector {
	t.Helper()
	r := scalarFrom(t, "edge nonce")
	var zero scalar.Scalar
	zero.Zero()
	var rB curve.CompressedEdwardsY
	var rBPoint curve.EdwardsPoint
	rB.SetEdwardsPoint(rBPoint.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &r))

	good := s.sign(t, rB[:], &r)
	if !bytes.Equal(good, ed25519.Sign(s.priv, s.msg)) && !ed25519.Verify(s.pub, s.msg, good) {
		t.Fatal("edge signer does not make valid signatures")
	}
	vs := []edgeVector{{"ordinary signature, R = [r]B", good, true, true}}

	for i, p := range smallOrderPoints {
		identity := i == 0
		vs = append(vs, edgeVector{"small-order R: " + p.name, s.sign(t, mustDecodeHex(p.hex), &zero), identity, true})
		if !identity {
			vs = append(vs, edgeVector{"mixed-order R = [r]B + " + p.name, s.sign(t, pointPlus(t, &r, p.hex), &r), false, true})
		}
	}
	for _, p := range nonCanonicalSmallOrder {
		vs = append(vs, edgeVector{"non-canonical R: " + p.name, s.sign(t, mustDecodeHex(p.hex), &zero), false, false})
	}
	vs = append(vs, edgeVector{"R not on the curve", s.sign(t, mustDecodeHex(notOnCurve), &zero), false, false})

	withS := func(sig, S []byte) []byte { return append(append([]byte(nil), sig[:32]...), S...) }
	vs = append(vs,
		edgeVector{"non-canonical S = S + L", withS(good, addL(good[32:])), false, false},
		edgeVector{"non-canonical S with the top bit set", withS(good, append(append([]byte(nil), good[32:63]...), good[63]|0x80)), false, false},
		edgeVector{"S = L (zero, non-canonical)", withS(good, groupOrder), false, false},
	)
	// A small-order R whose S is canonical but also + L: still rejected.
	so := s.sign(t, mustDecodeHex(smallOrderPoints[4].hex), &zero)
	vs = append(vs, edgeVector{"small-order R with non-canonical S + L", withS(so, addL(so[32:])), false, false})
	forged := bytes.Clone(good)
	forged[40] ^= 1
	vs = append(vs, edgeVector{"ordinary signature, S changed", forged, false, false})
	return vs
}

// TestEdgeVectors is the table of where Relay.Verify agrees with
// crypto/ed25519 and where it differs (documented in doc.go).
func TestEdgeVectors(t *testing.T) {
	s := newEdgeSigner(t)
	r, err := NewRelay(s.pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	fips := &ved25519.Options{Verify: ved25519.VerifyOptionsFIPS_186_5}
	differ := 0
	for _, v := range relayEdgeVectors(t, s) {
		if got := ed25519.Verify(s.pub, s.msg, v.sig); got != v.wantStdlib {
			t.Errorf("%s: crypto/ed25519.Verify = %v; table says %v", v.name, got, v.wantStdlib)
		}
		if got := ved25519.VerifyWithOptions(ved25519.PublicKey(s.pub), s.msg, v.sig, fips); got != v.wantRelay {
			t.Errorf("%s: voi's FIPS 186-5 verification = %v; the relay's semantics, which it implements independently, say %v", v.name, got, v.wantRelay)
		}
		err := r.Verify(s.ts, []byte(hex.EncodeToString(v.sig)), s.body)
		if got := err == nil; got != v.wantRelay {
			t.Errorf("%s: Relay.Verify = %v; table says accept=%v", v.name, err, v.wantRelay)
		}
		if err != nil && !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Relay.Verify = %v; want ErrBadSignature", v.name, err)
		}
		if v.wantRelay != v.wantStdlib {
			differ++
		}
	}
	// 7 small-order R and 7 mixed-order R: the whole difference.
	if differ != 14 {
		t.Errorf("the table has %d rows where the relay and crypto/ed25519 differ; doc.go says 14", differ)
	}
}

// TestEdgeKeys: NewRelay refuses every key that is not a canonical encoding
// of a prime-order point, including the ones under which crypto/ed25519
// accepts signatures made without any private key.
func TestEdgeKeys(t *testing.T) {
	s := newEdgeSigner(t)
	type key struct {
		name string
		enc  []byte
		a    *scalar.Scalar // discrete log of the prime-order part, if known
	}
	var keys []key
	var zero scalar.Scalar
	zero.Zero()
	for _, p := range smallOrderPoints {
		keys = append(keys, key{"small-order A: " + p.name, mustDecodeHex(p.hex), &zero})
		if p.hex != smallOrderPoints[0].hex {
			keys = append(keys, key{"mixed-order A = relay key + " + p.name, pointPlus(t, &s.a, p.hex), &s.a})
		}
	}
	for _, p := range nonCanonicalSmallOrder {
		keys = append(keys, key{"non-canonical A: " + p.name, mustDecodeHex(p.hex), &zero})
	}
	keys = append(keys, key{"A not on the curve", mustDecodeHex(notOnCurve), nil})

	for _, k := range keys {
		if _, err := NewRelay(k.enc, 0); err == nil {
			t.Errorf("%s: NewRelay accepted the key %x", k.name, k.enc)
		}
		if k.a == nil {
			continue
		}
		// Show why: with R = [r]B and S = r + k*a, crypto/ed25519 accepts
		// whenever [k] kills A's small-order part, which a signer (for a
		// small-order A: anyone, as a = 0) reaches by trying nonces.
		found := false
		for i := 0; i < 256 && !found; i++ {
			r := scalarFrom(t, "key nonce "+strconv.Itoa(i))
			var rB curve.CompressedEdwardsY
			var p curve.EdwardsPoint
			rB.SetEdwardsPoint(p.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &r))
			kk := challenge(t, rB[:], k.enc, s.msg)
			var S scalar.Scalar
			S.Add(S.Mul(&kk, k.a), &r)
			sig := append(append([]byte(nil), rB[:]...), make([]byte, 32)...)
			if err := S.ToBytes(sig[32:]); err != nil {
				t.Fatal(err)
			}
			found = ed25519.Verify(k.enc, s.msg, sig)
		}
		if !found {
			t.Errorf("%s: crypto/ed25519 accepted none of 256 signatures; the table's reason for refusing the key is wrong", k.name)
		}
	}
}

// TestBatchResultIndependentOfBatchMates mixes valid, invalid and edge
// signatures into batches of every size and order, and checks each result
// against the same signature verified alone.
func TestBatchResultIndependentOfBatchMates(t *testing.T) {
	s := newEdgeSigner(t)
	r, err := NewRelay(s.pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	vs := relayEdgeVectors(t, s)
	// Only signatures that decode reach a batch; the others fail in prepare.
	var items []*pending
	var want []bool
	var names []string
	// Each vector twice: over its own body, and over another body, which
	// turns every edge signature that decodes into an invalid one.
	for _, other := range []bool{false, true} {
		for _, v := range vs {
			body, wantOK, name := s.body, v.wantRelay, v.name
			if other {
				body, wantOK, name = []byte(`{"message":"other"}`), false, v.name+", other body"
			}
			p := new(pending)
			var sig [64]byte
			copy(sig[:], v.sig)
			if !r.prepare(p, &sig, s.ts, body) {
				if wantOK {
					t.Fatalf("%s: prepare rejected a signature the table accepts", name)
				}
				continue
			}
			if got := r.verifyOne(p); got != wantOK {
				t.Fatalf("%s: alone = %v; want %v", name, got, wantOK)
			}
			items = append(items, p)
			want = append(want, wantOK)
			names = append(names, name)
		}
	}
	if len(items) < 30 {
		t.Fatalf("only %d edge signatures decode; the test needs a real mix", len(items))
	}
	scratch := new(batchScratch)
	batch := make([]*pending, 0, maxBatch)
	idx := make([]int, 0, maxBatch)
	for size := 1; size <= maxBatch; size++ {
		for off := range 3 {
			batch, idx = batch[:0], idx[:0]
			for j := range size {
				i := (j*7 + off*size + j*j) % len(items)
				batch = append(batch, items[i])
				idx = append(idx, i)
			}
			for _, searchFirst := range []bool{false, true} {
				for _, p := range batch {
					p.ok = !p.ok // make a stale result visible
				}
				r.check(batch, scratch, searchFirst)
				for j, p := range batch {
					if p.ok != want[idx[j]] {
						t.Fatalf("batch of %d (offset %d, search first %v): item %d (%s) = %v; alone it is %v", size, off, searchFirst, j, names[idx[j]], p.ok, want[idx[j]])
					}
				}
			}
		}
	}
	// An all-valid batch takes the batch path (not the fallback) and passes,
	// including the edge signatures the cofactored equation accepts.
	batch = batch[:0]
	for i, p := range items {
		if want[i] && len(batch) < maxBatch {
			batch = append(batch, p)
		}
	}
	if !r.verifyBatch(batch, scratch) {
		t.Fatalf("the batch equation rejected %d signatures that each verify alone", len(batch))
	}
}

// TestVerifyConcurrentCallers runs many goroutines through Relay.Verify at
// once with a mix of good, forged and edge signatures, so that real batches
// form (and, under -race, the hand-offs are checked), and compares each
// result with the table. It runs with 1, 2, 4 and 8 leaders (GOMAXPROCS when
// the Relay is made), callers pausing now and then so that batches of every
// size, lone requests and requests put back to wait for a busy leader all
// happen; every caller must return (a lost wake-up hangs the test) and the
// batcher must end idle.
func TestVerifyConcurrentCallers(t *testing.T) {
	s := newEdgeSigner(t)
	vs := relayEdgeVectors(t, s)
	hexes := make([][]byte, len(vs))
	for i, v := range vs {
		hexes[i] = []byte(hex.EncodeToString(v.sig))
	}
	for _, procs := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			r, err := NewRelay(s.pub, 0)
			if err != nil {
				t.Fatal(err)
			}
			const callers, rounds = 48, 40
			var wg sync.WaitGroup
			errs := make(chan string, callers)
			for c := range callers {
				wg.Go(func() {
					for n := range rounds {
						i := (c*31 + n*17) % len(vs)
						err := r.Verify(s.ts, hexes[i], s.body)
						if (err == nil) != vs[i].wantRelay {
							errs <- fmt.Sprintf("caller %d: %s: Verify = %v; want accept=%v", c, vs[i].name, err, vs[i].wantRelay)
							return
						}
						if (c+n)%7 == 0 {
							time.Sleep(time.Duration(c%5) * 50 * time.Microsecond)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			r.batch.mu.Lock()
			defer r.batch.mu.Unlock()
			if r.batch.forming != 0 || len(r.batch.queue) != 0 || len(r.batch.idle) != cap(r.batch.idle) {
				t.Errorf("after all callers returned: %d forming, %d queued, %d of %d scratches free; want an idle batcher",
					r.batch.forming, len(r.batch.queue), len(r.batch.idle), cap(r.batch.idle))
			}
		})
	}
}

// TestBatchesFormOnOneCore pins the reason for the leader's yield: with
// GOMAXPROCS=1 and 32 concurrent callers, requests must still share batches.
// Without runtime.Gosched in batcher.verify every batch holds one request.
func TestBatchesFormOnOneCore(t *testing.T) {
	checkBatchesForm(t, 1, 32)
}

// checkBatchesForm has callers verify 20 times each at once with procs
// processors and wants at least 8 requests a batch on average.
func checkBatchesForm(t *testing.T, procs, callers int) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	r, ts, sig, body := newSignedSend(t)
	const rounds = 20
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range rounds {
				if err := r.Verify(ts, sig, body); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	r.batch.mu.Lock()
	batches, served := r.batch.batches, r.batch.served
	r.batch.mu.Unlock()
	if served != uint64(callers*rounds) {
		t.Fatalf("%d requests served; want %d", served, callers*rounds)
	}
	if avg := float64(served) / float64(batches); avg < 8 {
		t.Errorf("%d requests in %d batches (%.1f per batch) with GOMAXPROCS=%d; want at least 8 per batch", served, batches, avg, procs)
	}
}
