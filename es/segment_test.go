package es

import (
	"fmt"
	"slices"
	"testing"

	"github.com/matryer/is"
)

// The segment of a key is part of the stored format: these values were computed independently
// (FNV-1a 64 by hand, in Python) and must never change.
func TestSegmentOfIsStable(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for _, c := range []struct {
		key        string
		n16, n1024 int
	}{{"", 5, 805}, {"account-1", 6, 598}, {"order-42", 4, 724}, {"ü", 10, 1002}} {
		is.Equal(segmentOf(c.key, 16), c.n16)     // key c.key among 16
		is.Equal(segmentOf(c.key, 1024), c.n1024) // key c.key among 1024
		is.Equal(segmentOf(c.key, 1), 0)
	}
}

func TestShares(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	members := []string{"a", "b", "c"}
	is.Equal(shares(16, members, nil), map[string]int{"a": 6, "b": 5, "c": 5}) // by id when nothing is held
	// The extra goes to who holds most now: c keeps its 6.
	is.Equal(shares(16, members, []string{"c", "c", "c", "c", "c", "c", "a", "b"}), map[string]int{"a": 5, "b": 5, "c": 6})
	is.Equal(shares(16, members, nil)["zz"], 0) // not a member
	is.Equal(shares(2, members, nil), map[string]int{"a": 1, "b": 1, "c": 0})
	// More members than segments: the holders keep theirs, a newcomer gets none.
	is.Equal(shares(2, []string{"a", "b", "c"}, []string{"b", "c"}), map[string]int{"a": 0, "b": 1, "c": 1})
	is.Equal(shares(4, []string{"a"}, nil), map[string]int{"a": 4})
	for n := 1; n < 40; n++ {
		for m := 1; m < 12; m++ {
			ms := make([]string, m)
			for i := range ms {
				ms[i] = fmt.Sprint(i + 10)
			}
			holders := make([]string, n)
			for i := range holders {
				holders[i] = ms[(i*7)%m]
			}
			sum := 0
			for _, x := range ms {
				sum += shares(n, ms, holders)[x]
			}
			is.Equal(sum, n) // every segment is someone's share
		}
	}
}

func view(self string, members []string, holders []string, running ...int) segmentView {
	v := segmentView{self: self, members: members, holders: holders, running: make([]bool, len(holders)), freeFor: make([]int, len(holders))}
	for _, i := range running {
		v.running[i] = true
	}
	return v
}

func TestPlanSegmentsAlone(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	start, stop := planSegments(view("a", []string{"a"}, make([]string, 4)))
	is.Equal(start, []int{0, 1, 2, 3})
	is.Equal(len(stop), 0)
}

func TestPlanSegmentsJoin(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	held := []string{"a", "a", "a", "a"}
	// b joined: a hands back the last two, b takes nothing yet (none free).
	start, stop := planSegments(view("a", []string{"a", "b"}, held, 0, 1, 2, 3))
	is.Equal(len(start), 0)
	is.Equal(stop, []int{2, 3})
	start, stop = planSegments(view("b", []string{"a", "b"}, held))
	is.Equal(len(start), 0)
	is.Equal(len(stop), 0)
	// Once free, b takes them, from its place in the ring.
	start, _ = planSegments(view("b", []string{"a", "b"}, []string{"a", "a", "", ""}))
	is.Equal(start, []int{2, 3})
}

func TestPlanSegmentsHandsBackOnlyWhenSomeoneIsShort(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	// a holds 3 of 4, b 1 of its 2: b is short, so a hands one back.
	_, stop := planSegments(view("a", []string{"a", "b"}, []string{"a", "a", "a", "b"}, 0, 1, 2))
	is.Equal(stop, []int{2})
	// 5 segments: a holds 3 (its share), b 2 (its share): no one is short.
	_, stop = planSegments(view("a", []string{"a", "b"}, []string{"a", "a", "b", "b", "a"}, 0, 1, 4))
	is.Equal(len(stop), 0) // a's share is 3 of 5: nothing to hand back
	_, stop = planSegments(view("b", []string{"a", "b"}, []string{"a", "a", "b", "b", "a"}, 2, 3))
	is.Equal(len(stop), 0) // b holds its share (2)
}

func TestPlanSegmentsHandsBackSegmentsNotHeldFirst(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	// a runs 0..3 but holds only 0 and 3 yet (1 and 2 free, being taken); b joined.
	_, stop := planSegments(view("a", []string{"a", "b"}, []string{"a", "", "", "a"}, 0, 1, 2, 3))
	is.Equal(stop, []int{1, 2})
}

func TestPlanSegmentsStopsWaitingForSegmentsHeldElsewhere(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	start, stop := planSegments(view("a", []string{"a", "b"}, []string{"b", "b", "", ""}, 0, 1))
	is.Equal(stop, []int{0, 1})
	is.Equal(start, []int{2, 3})
}

func TestPlanSegmentsTakesOrphans(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	v := view("a", []string{"a", "b"}, []string{"a", "a", "b", ""}, 0, 1)
	start, _ := planSegments(v)
	is.Equal(len(start), 0) // a has its share, b should take 3
	v.freeFor[3] = segmentOrphanRounds
	start, _ = planSegments(v)
	is.Equal(start, []int{3}) // left free too long: taken anyway
}

// sim is a cluster of members running planSegments against shared lease state: a start takes the
// lease when it is free, a stop releases it.
type sim struct {
	holders []string
	running map[string][]bool
	freeFor map[string][]int
	members []string
}

func newSim(n int) *sim {
	return &sim{holders: make([]string, n), running: map[string][]bool{}, freeFor: map[string][]int{}}
}

func (s *sim) join(m string) {
	s.members = append(s.members, m)
	slices.Sort(s.members)
	s.running[m] = make([]bool, len(s.holders))
	s.freeFor[m] = make([]int, len(s.holders))
}

func (s *sim) kill(m string) {
	s.members = slices.DeleteFunc(s.members, func(x string) bool { return x == m })
	delete(s.running, m)
	for i, h := range s.holders {
		if h == m {
			s.holders[i] = "" // its leases run out
		}
	}
}

// round runs one heartbeat of every member, in turn.
func (s *sim) round() {
	for _, m := range s.members {
		run := s.running[m]
		// A running segment whose lease is free is taken (the keeper's retry).
		for i, r := range run {
			if r && s.holders[i] == "" {
				s.holders[i] = m
			}
		}
		v := segmentView{self: m, members: s.members, holders: slices.Clone(s.holders), running: slices.Clone(run), freeFor: s.freeFor[m]}
		for i := range s.holders {
			if s.holders[i] == "" && !run[i] {
				s.freeFor[m][i]++
			} else {
				s.freeFor[m][i] = 0
			}
		}
		start, stop := planSegments(v)
		for _, i := range stop {
			run[i] = false
			if s.holders[i] == m {
				s.holders[i] = ""
			}
		}
		for _, i := range start {
			run[i] = true
			if s.holders[i] == "" {
				s.holders[i] = m
			}
		}
	}
}

func (s *sim) counts() map[string]int {
	c := map[string]int{}
	for _, h := range s.holders {
		c[h]++
	}
	return c
}

// settled runs rounds until every segment is held by a member with its fair share, and returns
// how many it took (-1: not within 20).
func (s *sim) settled() int {
	for r := 1; r <= 20; r++ {
		s.round()
		c := s.counts()
		ok := c[""] == 0
		for _, m := range s.members {
			ok = ok && c[m] == shares(len(s.holders), s.members, s.holders)[m]
		}
		if ok {
			// And it stays so.
			before := slices.Clone(s.holders)
			s.round()
			if slices.Equal(before, s.holders) {
				return r
			}
		}
	}
	return -1
}

func TestPlanSegmentsConverges(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	s := newSim(16)
	s.join("p1")
	is.Equal(s.settled(), 1)
	s.join("p2")
	r := s.settled()
	is.True(r > 0 && r <= 3) // a join settles within three heartbeats
	s.join("p3")
	r = s.settled()
	is.True(r > 0 && r <= 3)
	is.Equal(s.counts(), map[string]int{"p1": 6, "p2": 5, "p3": 5})
	s.kill("p2")
	r = s.settled()
	is.True(r > 0 && r <= 3) // a death settles within three heartbeats once its leases ran out
	is.Equal(s.counts(), map[string]int{"p1": 8, "p3": 8})
	s.join("p2")
	s.join("p4")
	s.join("p5")
	r = s.settled()
	is.True(r > 0 && r <= 4)
	for _, c := range s.counts() {
		is.True(c == 3 || c == 4) // a share of 16 among 5
	}
	// More members than segments: each segment held once, the rest idle, and a newcomer that
	// sorts first moves nothing.
	s2 := newSim(2)
	for _, m := range []string{"b", "c", "d"} {
		s2.join(m)
	}
	is.True(s2.settled() > 0)
	is.Equal(s2.counts(), map[string]int{"b": 1, "c": 1})
	before := slices.Clone(s2.holders)
	s2.join("a")
	is.True(s2.settled() > 0)
	is.Equal(s2.holders, before)
}
