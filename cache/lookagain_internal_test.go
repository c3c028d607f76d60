package cache

import (
	"errors"
	"testing"
)

// scripted answers attempts from a list, counting them.
type scripted struct {
	answers []error
	calls   int
}

func (s *scripted) attempt() (Reservation, error) {
	err := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{MessageID: "m", Nonce: 7}, nil
}

// TestLookAgainKeepsInProgressWhenTheStoreStopsAnswering: a Reserve that
// found the message's claim held by another sender, and then cannot reach
// the store while it looks again, still answers ErrDeliveryInProgress (the
// router's 409), never ErrUnavailable, on which the router would deliver
// through its in-process fallback and push the message a second time.
func TestLookAgainKeepsInProgressWhenTheStoreStopsAnswering(t *testing.T) {
	s := &scripted{answers: []error{ErrUnavailable}}
	_, err := lookAgain(Reservation{}, ErrDeliveryInProgress, s.attempt)
	if !errors.Is(err, ErrDeliveryInProgress) {
		t.Fatalf("lookAgain = %v; want ErrDeliveryInProgress", err)
	}
	if s.calls < 1 {
		t.Fatalf("the claim was looked at %d more times; want it looked at again", s.calls)
	}
}

// TestLookAgainTakesTheSettledAnswer: a claim whose send ended while
// Reserve looked again answers as the store then holds it — delivered (its
// mark landed), or a fresh claim (it was released) — and one held
// throughout answers in progress after the last look.
func TestLookAgainTakesTheSettledAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []error
		want    error
		calls   int
	}{
		{"delivered", []error{ErrDeliveryInProgress, ErrAlreadyDelivered}, ErrAlreadyDelivered, 2},
		{"released", []error{nil}, nil, 1},
		{"held", []error{ErrDeliveryInProgress}, ErrDeliveryInProgress, len(inProgressRechecks)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{answers: tc.answers}
			res, err := lookAgain(Reservation{}, ErrDeliveryInProgress, s.attempt)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("lookAgain = %v; want %v", err, tc.want)
			}
			if tc.want == nil && res.Nonce != 7 {
				t.Fatalf("lookAgain = %+v; want the fresh claim", res)
			}
			if s.calls != tc.calls {
				t.Fatalf("looked again %d times; want %d", s.calls, tc.calls)
			}
		})
	}
}
