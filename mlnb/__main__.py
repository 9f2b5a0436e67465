from mlnb.cli import main

main()
