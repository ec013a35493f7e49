from pixelport.cli import main

raise SystemExit(main())
