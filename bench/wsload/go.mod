module propstream/bench/wsload

go 1.26
