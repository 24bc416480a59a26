from distillbench.cli import main

main()
