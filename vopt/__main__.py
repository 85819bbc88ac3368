from vopt.cli.app import main

main()
