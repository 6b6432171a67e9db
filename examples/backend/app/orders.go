package app

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// Order is the state of the multi-step workflow: created, items added, then
// submitted. It lives in one server's memory and reaches the others only
// through delayed replication.
type Order struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Items  []Item `json:"items"`
	Status string `json:"status"` // "open" or "submitted"
	// Version counts changes; replication keeps the highest version, ties
	// broken by UpdatedOn, so every server converges on the same copy.
	Version   int    `json:"version"`
	CreatedOn string `json:"createdOn"`
	UpdatedOn string `json:"updatedOn"`
	// Server is the server that answered this request (not stored).
	Server string `json:"server,omitempty"`
}

// Item is one line of an order.
type Item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

const (
	statusOpen      = "open"
	statusSubmitted = "submitted"
)

// newer reports whether o should replace old.
func (o Order) newer(old Order) bool {
	if o.Version != old.Version {
		return o.Version > old.Version
	}
	return o.UpdatedOn > old.UpdatedOn
}

func (o Order) clone() Order {
	o.Items = slices.Clone(o.Items)
	o.Server = ""
	return o
}

// orderStore is one server's in-memory order table.
type orderStore struct {
	mu     sync.Mutex
	orders map[string]Order
}

func newOrderStore() *orderStore { return &orderStore{orders: map[string]Order{}} }

func (s *orderStore) get(id string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	return o.clone(), ok
}

// update applies fn to the stored order under the lock; fn returns an error
// to leave the order unchanged.
func (s *orderStore) update(id string, fn func(*Order) error) (Order, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return Order{}, false, nil
	}
	o = o.clone()
	if err := fn(&o); err != nil {
		return Order{}, true, err
	}
	o.Version++
	s.orders[id] = o
	return o.clone(), true, nil
}

func (s *orderStore) put(o Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[o.ID] = o.clone()
}

// merge stores a replica unless the local copy is newer; it reports whether
// the replica was applied.
func (s *orderStore) merge(o Order) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.orders[o.ID]; ok && !o.newer(old) {
		return false
	}
	s.orders[o.ID] = o.clone()
	return true
}

func newOrderID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "o-" + hex.EncodeToString(b[:])
}

// conflictError is a workflow step that this server cannot perform with the
// state it has; it becomes a 409.
type conflictError struct{ code, msg string }

func (e *conflictError) Error() string { return e.msg }

func (a *App) createOrder(w http.ResponseWriter, r *http.Request) {
	user := a.authenticate(w, r)
	if user == "" {
		return
	}
	o := Order{
		ID:        newOrderID(),
		User:      user,
		Items:     []Item{},
		Status:    statusOpen,
		Version:   1,
		CreatedOn: a.cfg.ServerID,
		UpdatedOn: a.cfg.ServerID,
	}
	a.orders.put(o)
	a.repl.schedule(o)
	a.cfg.Logger.Info("order created", "order", o.ID, "user", user)
	o.Server = a.cfg.ServerID
	writeJSON(w, http.StatusCreated, o)
}

func (a *App) getOrder(w http.ResponseWriter, r *http.Request) {
	user := a.authenticate(w, r)
	if user == "" {
		return
	}
	id := r.PathValue("id")
	o, ok := a.orders.get(id)
	if !ok || o.User != user {
		a.orderNotFound(w, id)
		return
	}
	o.Server = a.cfg.ServerID
	writeJSON(w, http.StatusOK, o)
}

// addItemRequest is the body of POST /orders/{id}/items.
type addItemRequest struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func (a *App) addItem(w http.ResponseWriter, r *http.Request) {
	user := a.authenticate(w, r)
	if user == "" {
		return
	}
	var req addItemRequest
	if err := decodeJSON(r, &req); err != nil {
		a.writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !validName(req.SKU) {
		a.writeError(w, http.StatusBadRequest, "bad_request", "invalid sku: must be 1-64 characters of [A-Za-z0-9._-]")
		return
	}
	if req.Qty < 1 || req.Qty > 1000 {
		a.writeError(w, http.StatusBadRequest, "bad_request", "invalid qty: must be between 1 and 1000")
		return
	}
	a.mutate(w, user, r.PathValue("id"), func(o *Order) error {
		if o.Status != statusOpen {
			return &conflictError{"order_submitted", fmt.Sprintf("order %s is already submitted", o.ID)}
		}
		o.Items = append(o.Items, Item{SKU: req.SKU, Qty: req.Qty})
		return nil
	})
}

func (a *App) submitOrder(w http.ResponseWriter, r *http.Request) {
	user := a.authenticate(w, r)
	if user == "" {
		return
	}
	a.mutate(w, user, r.PathValue("id"), func(o *Order) error {
		if o.Status != statusOpen {
			return &conflictError{"order_submitted", fmt.Sprintf("order %s is already submitted", o.ID)}
		}
		if len(o.Items) == 0 {
			// On the server that ran the workflow this is a client mistake;
			// after a hop it is the other server not having the items yet.
			return &conflictError{"order_empty", fmt.Sprintf("order %s has no items on %s: nothing to submit (items added on another server not replicated yet?)", o.ID, a.cfg.ServerID)}
		}
		o.Status = statusSubmitted
		return nil
	})
}

// mutate runs one workflow step on the local copy of an order, schedules its
// replication and answers with the new state.
func (a *App) mutate(w http.ResponseWriter, user, id string, fn func(*Order) error) {
	var owned = true
	o, ok, err := a.orders.update(id, func(o *Order) error {
		if o.User != user {
			owned = false
			return errNotOwned
		}
		o.UpdatedOn = a.cfg.ServerID
		return fn(o)
	})
	switch {
	case !ok || !owned:
		a.orderNotFound(w, id)
		return
	case err != nil:
		if ce, isConflict := err.(*conflictError); isConflict {
			a.writeError(w, http.StatusConflict, ce.code, ce.msg)
			return
		}
		a.writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	a.repl.schedule(o)
	o.Server = a.cfg.ServerID
	writeJSON(w, http.StatusOK, o)
}

var errNotOwned = fmt.Errorf("order belongs to another user")

// orderNotFound is what a hop in the middle of a workflow looks like: the
// order exists, but on another server, and has not been replicated here.
func (a *App) orderNotFound(w http.ResponseWriter, id string) {
	a.writeError(w, http.StatusNotFound, "order_not_found",
		fmt.Sprintf("order %s not found on %s: replication lag (created on another server and not copied here yet?)", id, a.cfg.ServerID))
}
