module semafore.local/goadapter

go 1.24
