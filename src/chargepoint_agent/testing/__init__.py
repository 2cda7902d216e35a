"""TEST-ONLY helpers of the charge-point agent: `ocpp_station`, an OCPP 2.0.1 station (the
`ocpp` package's asyncio ChargePoint) to connect to an agent running the ocpp201 driver.
Nothing in the agent imports this package."""
