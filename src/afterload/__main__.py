from afterload.cli import main

main()
