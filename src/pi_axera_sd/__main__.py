from pi_axera_sd.cli import main

raise SystemExit(main())
