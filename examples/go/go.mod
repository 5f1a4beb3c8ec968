module example.com/libchip/examples

go 1.22

require example.com/libchip v0.0.0

// The binding in this repository.
replace example.com/libchip => ../../bindings/go
