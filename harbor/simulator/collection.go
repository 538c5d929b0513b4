package simulator

import (
	"net/http"
	"slices"
)

// keyed is what a collection holds: a pointer to an object whose id the
// state's sequence gave it.
type keyed interface{ key() int64 }

// collection holds the objects of one kind in the order they were made,
// which is the order of their ids, as Harbor lists them.
type collection[T keyed] struct{ all []T }

// add appends v and returns it.
func (c *collection[T]) add(v T) T {
	c.all = append(c.all, v)
	return v
}

// get finds the object of an id.
func (c *collection[T]) get(id int64) (T, bool) {
	return c.find(func(v T) bool { return v.key() == id })
}

// lookup is get, or a 404 that names what is missing ("registry 7").
func (c *collection[T]) lookup(what string, id int64) (T, error) {
	v, ok := c.get(id)
	if !ok {
		return v, errf(http.StatusNotFound, "%s %d not found", what, id)
	}
	return v, nil
}

// find returns the first object match accepts.
func (c *collection[T]) find(match func(T) bool) (T, bool) {
	if i := slices.IndexFunc(c.all, match); i >= 0 {
		return c.all[i], true
	}
	var zero T
	return zero, false
}

// filter returns the objects keep accepts, oldest first.
func (c *collection[T]) filter(keep func(T) bool) []T {
	var out []T
	for _, v := range c.all {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// remove deletes the objects match accepts.
func (c *collection[T]) remove(match func(T) bool) {
	c.all = slices.DeleteFunc(c.all, match)
}

// delete deletes the object of an id.
func (c *collection[T]) delete(id int64) {
	c.remove(func(v T) bool { return v.key() == id })
}

// listPage answers a list call: the objects keep accepts (every one when
// keep is nil) as show makes them, a page at a time.
func listPage[T keyed](c *call, col *collection[T], keep func(T) bool, show func(T) map[string]any) reply {
	var out []map[string]any
	for _, v := range col.all {
		if keep == nil || keep(v) {
			out = append(out, show(v))
		}
	}
	return page(c, out)
}
