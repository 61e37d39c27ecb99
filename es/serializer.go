package es

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
)

// Serializer encodes event and snapshot data. Metadata is always stored as JSON.
type Serializer interface {
	// Marshal encodes a value for storage.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data stored under typeName. The store does not use data afterwards, so
	// the result may keep it.
	Unmarshal(typeName string, data []byte) (any, error)
	// TypeName names v's type, for data given without a type name; ok is false when it cannot.
	TypeName(v any) (name string, ok bool)
}

// JSONSerializer is the default Serializer. Registered types decode to their Go type; other data
// decodes to the generic encoding/json values (map[string]any, []any, float64, ...).
type JSONSerializer struct {
	mu     sync.RWMutex
	byName map[string]reflect.Type
	byType map[reflect.Type]string
}

// NewJSONSerializer returns a JSONSerializer with no registered types.
func NewJSONSerializer() *JSONSerializer {
	return &JSONSerializer{byName: map[string]reflect.Type{}, byType: map[reflect.Type]string{}}
}

// Register maps an event type name to the Go type of example (a value or a pointer to one): data
// stored under name decodes to that type (a value, not a pointer), and data of that type appended
// without an EventType is stored under name. A name or type registered twice is an error.
func (s *JSONSerializer) Register(name string, example any) error {
	if name == "" {
		return fmt.Errorf("eventstore: register: %w: empty type name", ErrInvalidArgument)
	}
	t := baseType(example)
	if t == nil {
		return fmt.Errorf("eventstore: register %q: %w: nil example", name, ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.byName[name]; ok && prev != t {
		return fmt.Errorf("eventstore: register %q: %w: name already maps to %v", name, ErrInvalidArgument, prev)
	}
	if prev, ok := s.byType[t]; ok && prev != name {
		return fmt.Errorf("eventstore: register %q: %w: %v already registered as %q", name, ErrInvalidArgument, t, prev)
	}
	s.byName[name] = t
	s.byType[t] = name
	return nil
}

// MustRegister is Register that panics on error, for package initialisation.
func (s *JSONSerializer) MustRegister(name string, example any) {
	if err := s.Register(name, example); err != nil {
		panic(err)
	}
}

func baseType(v any) reflect.Type {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Marshal encodes v as JSON. A json.RawMessage is checked and kept as it is.
func (s *JSONSerializer) Marshal(v any) ([]byte, error) {
	if r, ok := v.(json.RawMessage); ok && r != nil {
		if !json.Valid(r) {
			return nil, errors.New("json.RawMessage holds invalid JSON")
		}
		return r, nil
	}
	return json.Marshal(v)
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// Unmarshal decodes JSON into the type registered for typeName, or into generic values. A type
// registered as json.RawMessage gets data itself, undecoded.
func (s *JSONSerializer) Unmarshal(typeName string, data []byte) (any, error) {
	s.mu.RLock()
	t, ok := s.byName[typeName]
	s.mu.RUnlock()
	if !ok {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	if t == rawMessageType {
		// Stored by Marshal, so valid JSON already: hand the bytes over as they are.
		return json.RawMessage(data), nil
	}
	p := reflect.New(t)
	if err := json.Unmarshal(data, p.Interface()); err != nil {
		return nil, err
	}
	return p.Elem().Interface(), nil
}

// TypeName returns the registered name of v's type, else the Go name of a named type
// ("bank.Deposited"). Unnamed types (maps, slices, nil) have no name.
func (s *JSONSerializer) TypeName(v any) (string, bool) {
	t := baseType(v)
	if t == nil {
		return "", false
	}
	s.mu.RLock()
	name, ok := s.byType[t]
	s.mu.RUnlock()
	if ok {
		return name, true
	}
	if t.Name() == "" || t.PkgPath() == "" {
		return "", false
	}
	return t.String(), true
}

func marshalMetadata(m map[string]any) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	return json.Marshal(m)
}

// unmarshalMetadata reads stored metadata; none is stored as NULL or, through some drivers' array
// encoding, as empty bytes.
func unmarshalMetadata(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("decode metadata: " + err.Error())
	}
	return m, nil
}

// metadataDecoder decodes the metadata of the events of one read. Events appended together
// usually share their metadata: when a row's bytes equal the previous row's and that map holds
// no nested maps or slices, a copy of it is as good as decoding again, and much cheaper.
type metadataDecoder struct {
	last []byte
	m    map[string]any
	flat bool
}

func (d *metadataDecoder) decode(b []byte) (map[string]any, error) {
	if d.flat && len(b) > 0 && bytes.Equal(b, d.last) {
		return maps.Clone(d.m), nil
	}
	m, err := unmarshalMetadata(b)
	if err != nil {
		return nil, err
	}
	d.last, d.m, d.flat = b, m, m != nil && flat(m)
	return m, nil
}

// flat reports whether a decoded JSON object holds only scalars, so a shallow copy is a copy.
func flat(m map[string]any) bool {
	for _, v := range m {
		switch v.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}
