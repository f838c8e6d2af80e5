print("idefics")
