module example.com/libchip

go 1.22
