package demo

import (
	"errors"
	"fmt"

	"github.com/go-eventstore/eventstore/es"
)

// The bank domain's events.
type (
	// AccountOpened starts an account.
	AccountOpened struct {
		Owner string `json:"owner"`
	}
	// MoneyDeposited adds to the balance.
	MoneyDeposited struct {
		Amount int `json:"amount"`
	}
	// MoneyWithdrawn takes from the balance.
	MoneyWithdrawn struct {
		Amount int `json:"amount"`
	}
)

// Account is the state rebuilt from an account's events (or a snapshot plus later events).
type Account struct {
	ID      string `json:"id"`
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
	Version int64  `json:"version"`
}

// ErrInsufficientFunds is the domain refusing a withdrawal.
var ErrInsufficientFunds = errors.New("insufficient funds")

// NewSerializer registers the domain's types, so events read back as these Go types.
func NewSerializer() *es.JSONSerializer {
	s := es.NewJSONSerializer()
	s.MustRegister("bank.AccountOpened", AccountOpened{})
	s.MustRegister("bank.MoneyDeposited", MoneyDeposited{})
	s.MustRegister("bank.MoneyWithdrawn", MoneyWithdrawn{})
	s.MustRegister("bank.Account", Account{})
	return s
}

// Apply folds one event into the account.
func (a *Account) Apply(ev es.RecordedEvent) {
	switch e := ev.Data.(type) {
	case AccountOpened:
		a.Owner = e.Owner
	case MoneyDeposited:
		a.Balance += e.Amount
	case MoneyWithdrawn:
		a.Balance -= e.Amount
	}
	a.Version = ev.EventNumber
}

// Deposit decides the events of a deposit.
func (a *Account) Deposit(amount int) ([]es.EventData, error) {
	if amount <= 0 {
		return nil, fmt.Errorf("deposit %d: amount must be positive", amount)
	}
	return []es.EventData{{Data: MoneyDeposited{Amount: amount}}}, nil
}

// Withdraw decides the events of a withdrawal.
func (a *Account) Withdraw(amount int) ([]es.EventData, error) {
	if amount > a.Balance {
		return nil, fmt.Errorf("withdraw %d from %s (balance %d): %w", amount, a.ID, a.Balance, ErrInsufficientFunds)
	}
	return []es.EventData{{Data: MoneyWithdrawn{Amount: amount}}}, nil
}
