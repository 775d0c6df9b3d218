module github.com/flashpath/flashpath

go 1.26.0
