from textclf.cli import main

raise SystemExit(main())
