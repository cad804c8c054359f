from propstream.entry import main

main()
