package main

func main() { println("nats") }
