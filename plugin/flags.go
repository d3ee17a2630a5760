package plugin

import (
	"strconv"
)

// optionalBool is a bool flag that remembers whether it was given, like
// Hangar's --tls-verify.
type optionalBool struct {
	set   bool
	value bool
}

func (b *optionalBool) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatBool(b.value)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.set, b.value = true, v
	return nil
}

func (b *optionalBool) Type() string { return "bool" }

// IsBoolFlag lets "--tls-verify" stand for "--tls-verify=true".
func (b *optionalBool) IsBoolFlag() bool { return true }

// ptr returns nil when the flag was not given.
func (b *optionalBool) ptr() *bool {
	if !b.set {
		return nil
	}
	v := b.value
	return &v
}
