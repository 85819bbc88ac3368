from vopt.cli.app import main

if __name__ == "__main__":  # not when a fork server or spawned child imports the main module
    main()
