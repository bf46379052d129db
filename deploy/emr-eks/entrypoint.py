"""EMR on EKS entry point: spark-submit runs this file with the job's entryPointArguments."""

import sys

from streamer.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
