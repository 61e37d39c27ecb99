package es

// SetDeliveryHook makes f see every batch handed to a persistent subscriber, at that moment,
// with the lease epoch it was delivered under (tests only; nil removes it). Set it before the
// store starts subscriptions.
func SetDeliveryHook(f func(stream, name string, epoch int64, batch []RecordedEvent)) {
	if f == nil {
		deliveryHook.Store(nil)
		return
	}
	deliveryHook.Store(&f)
}
