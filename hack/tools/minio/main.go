// Command minio is the MinIO S3 server, built from its pinned module.
package main

import (
	"os"

	minio "github.com/minio/minio/cmd"
)

func main() { minio.Main(os.Args) }
