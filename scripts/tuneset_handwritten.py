"""Records of the tuning set written one by one (see build_tuneset.py). Math and code items carry the
same ``check`` metadata as the generated ones."""

from __future__ import annotations

from tuneset_code import HANDWRITTEN_CODE
from tuneset_math import HANDWRITTEN_MATH

CLASSIFICATION = [
    ("Is this sentence written in the active or the passive voice?", "The window was broken by the storm.", "Passive"),
    ("Active or passive voice?", "The chef tasted the sauce.", "Active"),
    ("Does this sentence use a simile, a metaphor, or neither?", "Her laugh was like a bell ringing.", "Simile"),
    ("Does this sentence use a simile, a metaphor, or neither?", "The classroom was a zoo after lunch.", "Metaphor"),
    ("Which planet group does Jupiter belong to: rocky planets or gas giants?", "", "Gas giants"),
    ("Is a tomato botanically a fruit or a vegetable?", "", "A fruit - it develops from the flower and holds seeds."),
    ("Which continent is Kenya in?", "", "Africa"),
    ("Label the dish as a starter, main course, or dessert.", "Chocolate mousse with raspberries", "Dessert"),
    ("Label the dish as a starter, main course, or dessert.", "Roast chicken with potatoes and gravy", "Main course"),
    ("Is glass a conductor or an insulator of electricity?", "", "An insulator"),
    ("Would you describe this request as urgent or routine?", "Please update the team calendar with next quarter's holidays.", "Routine"),
    ("Would you describe this request as urgent or routine?", "The server room is flooding - we need someone there now.", "Urgent"),
    ("Which state of matter is steam: solid, liquid, or gas?", "", "Gas"),
    ("Is this a complete sentence or a fragment?", "Because the train was late.", "A fragment - it has no main clause."),
    ("Is this a complete sentence or a fragment?", "The train was late.", "A complete sentence"),
    ("Decide if the feedback is about the price, the quality, or the delivery.", "It arrived four days after the promised date.", "Delivery"),
    ("Decide if the feedback is about the price, the quality, or the delivery.", "Far too expensive for what you get.", "Price"),
    ("Is a whale a fish or a mammal?", "", "A mammal - it breathes air and feeds its young on milk."),
    ("Which season is described: spring, summer, autumn, or winter?", "Leaves turn orange and drift down in the cool wind.", "Autumn"),
    ("Which season is described: spring, summer, autumn, or winter?", "Blossom covers the trees and lambs play in the fields.", "Spring"),
    ("Is this word an adverb or an adjective?", "gently", "Adverb"),
    ("Is the triangle with angles 50, 60 and 70 degrees acute, right, or obtuse?", "", "Acute - every angle is under 90 degrees."),
]  # fmt: skip

GENERAL_QA = [
    ("How many continents are there?", "", "Seven."),
    ("What gas do plants release during photosynthesis?", "", "Oxygen."),
    ("What is the hardest natural substance?", "", "Diamond."),
    ("Which organ pumps blood around the body?", "", "The heart."),
    ("How many players are on a football (soccer) team on the pitch?", "", "Eleven."),
    ("What is the boiling point of water at sea level in Fahrenheit?", "", "212 degrees Fahrenheit."),
    ("Which is the closest star to Earth?", "", "The Sun."),
    ("What do bees collect from flowers to make honey?", "", "Nectar."),
    ("How many hours are in a day?", "", "24."),
    ("Which instrument has 88 keys?", "", "The piano."),
    ("What is the largest planet in our solar system?", "", "Jupiter."),
    ("What shape has three sides?", "", "A triangle."),
    ("Which animal is known as the ship of the desert?", "", "The camel."),
    ("What do we call frozen water?", "", "Ice."),
    ("Which vitamin does sunlight help the skin produce?", "", "Vitamin D."),
    ("What is the main language spoken in Brazil?", "", "Portuguese."),
    ("From the note, when does the shop open on Saturdays?",
     "Opening hours: weekdays 8 to 6, Saturdays 9 to 1, closed on Sundays.", "At 9."),
    ("According to the message, who is picking up the cake?",
     "Hi all - Sam booked the room, Lea is picking up the cake and I'll bring the candles.", "Lea."),
    ("What does the abbreviation 'e.g.' mean?", "", "For example."),
    ("Which tool would you use to measure an angle?", "", "A protractor."),
    ("Why do we see lightning before we hear thunder?", "", "Light travels much faster than sound, so the flash reaches us first."),
    ("What is a group of wolves called?", "", "A pack."),
]  # fmt: skip

GENERATION = [
    ("Give a short, kind reply to a friend who just failed a driving test.", "",
     "Sorry to hear it - lots of great drivers fail the first time. You were close, and you'll nail it next time!"),
    ("Write a two-line rhyme about a sleepy cat.", "", "The cat curls up upon the mat,\nand dreams all day of this and that."),
    ("Think up a name for a bakery that only sells bread.", "", "The Daily Loaf."),
    ("Write an out-of-office message for someone on holiday until Monday.", "",
     "Thanks for your email. I am on holiday until Monday and will reply when I am back."),
    ("Describe the smell of fresh rain in one sentence.", "", "Fresh rain smells clean and earthy, like cool stone and wet grass."),
    ("Invent a riddle whose answer is 'a clock'.", "", "I have hands but cannot clap, and a face but cannot smile. What am I?"),
    ("Write a one-sentence apology for arriving late to a meeting.", "",
     "I'm sorry for arriving late today and for keeping everyone waiting."),
    ("Give a motto for a school running club.", "", "One more step, together."),
    ("Write a short toast for a friend's wedding.", "",
     "To Anna and Leo: may your home be full of laughter and your road be long. Cheers!"),
    ("Create a tongue twister about a baker.", "", "Brave Bella bakes big brown buns by the bay."),
    ("Write a caption for a photo of a dog on a beach.", "", "Sand in the paws, joy in the heart."),
    ("Give a friendly greeting for the top of a newsletter.", "", "Hello neighbours, and welcome to this month's news!"),
    ("Write a two-sentence story about a lost balloon.", "",
     "The red balloon slipped from Mia's hand and drifted over the rooftops. Far away, a boy caught its string and waved at the sky."),
    ("Suggest a title for a song about a summer storm.", "", "Thunder in July."),
    ("Write a short description of a cosy reading corner.", "",
     "A deep armchair sits by the window, with a soft blanket, a warm lamp and a stack of books within reach."),
    ("Make up a name for a friendly robot.", "", "Bolt."),
    ("Write one line of encouragement for a student before an exam.", "", "You've prepared well - take a breath and show what you know."),
    ("Write a polite message asking a neighbour to turn down their music.", "",
     "Hi! Sorry to bother you, but could you turn the music down a little tonight? Thanks so much."),
    ("Describe an apple to someone who has never seen one, in one sentence.", "",
     "An apple is a round, fist-sized fruit with smooth red or green skin and crisp, sweet-sour flesh."),
    ("Write a four-word slogan encouraging people to recycle.", "", "Sort it, save it."),
]  # fmt: skip

SUMMARIZATION = [
    ("Sum up this text in one sentence.",
     "The village fete raised more than 3,000 pounds this year, the most in its history. The money will go towards a new roof for the village hall. "
     "Organisers thanked the volunteers who ran the cake stall and the dog show.",
     "The village fete raised a record 3,000-plus pounds for a new village hall roof."),
    ("Give the key point of this passage in one sentence.",
     "Octopuses have three hearts and blue blood. Two hearts pump blood to the gills, while the third pumps it to the rest of the body. "
     "Their blood is blue because it uses copper rather than iron to carry oxygen.",
     "Octopuses have three hearts and copper-based blue blood."),
    ("Boil the passage below down to a single sentence.",
     "After three dry summers, the reservoir is at its lowest level in forty years. The water company has banned garden hoses until further notice "
     "and asks households to take shorter showers. Fines may follow for repeated breaches.",
     "With the reservoir at a forty-year low, hoses are banned and households are asked to save water."),
    ("Condense this passage into a single sentence.",
     "Mina started learning the guitar at sixty-five. She practised for twenty minutes every morning and joined a beginners' group at the library. "
     "A year later she played her first song at her grandson's birthday party.",
     "Mina took up the guitar at sixty-five and, after a year of daily practice, played at her grandson's party."),
    ("What is the gist of the text below? Answer in one sentence.",
     "The bridge on Canal Road will be closed to cars from Monday while engineers replace its worn joints. Pedestrians and cyclists can still cross. "
     "Drivers should follow the signed diversion through Park Lane, which adds about ten minutes.",
     "The Canal Road bridge closes to cars from Monday for repairs, with a ten-minute diversion via Park Lane."),
    ("Shorten this text to a one-sentence summary.",
     "Honeybees communicate the location of flowers through a 'waggle dance'. The angle of the dance shows the direction relative to the sun, "
     "and its length shows the distance. Other bees watch and then fly straight to the food.",
     "Honeybees use a waggle dance whose angle and length tell others where food is."),
    ("Capture the essentials of this paragraph in one line.",
     "Our school's recycling drive collected 1,200 plastic bottles in two weeks. Class 5B collected the most and wins a trip to the science museum. "
     "The bottles will be turned into benches for the playground.",
     "A two-week drive collected 1,200 bottles for playground benches, and 5B won a museum trip."),
    ("Sum up this text in one sentence.",
     "Sleep helps the brain store memories. During deep sleep, the brain replays what it learned during the day and strengthens those connections. "
     "Students who sleep well after studying tend to remember more the next day.",
     "Deep sleep strengthens the day's memories, so good sleep after studying improves recall."),
    ("Give the key point of this passage in one sentence.",
     "The café on the corner has changed its hours. It now opens at 7 am instead of 8 to catch commuters, but it closes at 3 pm rather than 5. "
     "Weekend hours stay the same.",
     "The corner café now opens at 7 am and closes at 3 pm on weekdays, with weekend hours unchanged."),
    ("Boil the passage below down to a single sentence.",
     "Volunteers planted 500 trees along the river last weekend. The trees will shade the water, keeping it cool for fish, and their roots will "
     "stop the banks from washing away. A second planting day is planned for spring.",
     "Volunteers planted 500 riverside trees to cool the water and protect the banks, with more planned for spring."),
    ("Condense this passage into a single sentence.",
     "The museum's new dinosaur hall opens on Friday. Its centrepiece is a 20-metre skeleton found in a quarry only ten miles away. "
     "Entry to the hall is free for children under twelve.",
     "The museum opens a dinosaur hall on Friday featuring a locally found 20-metre skeleton, free for under-twelves."),
    ("What is the gist of the text below? Answer in one sentence.",
     "Tom tried to fix the leaking tap himself. He turned off the water, replaced the washer, and turned it back on, but the drip got worse. "
     "In the end he called a plumber, who found a cracked valve.",
     "Tom's own repair of a leaking tap failed, and a plumber found the real cause was a cracked valve."),
    ("Shorten this text to a one-sentence summary.",
     "A new study found that people who keep a plant on their desk report feeling calmer at work. The effect was small but appeared in all "
     "three offices studied. The researchers recommend low-light plants such as ferns.",
     "A study across three offices found desk plants slightly calm workers, and recommends low-light plants."),
    ("Capture the essentials of this paragraph in one line.",
     "The library will start lending tools next month. Members can borrow drills, ladders and garden shears for up to a week, free of charge. "
     "A short safety talk is required before the first loan.",
     "From next month library members can borrow tools free for a week after a short safety talk."),
    ("Sum up this text in one sentence.",
     "The football final was postponed because heavy rain flooded the pitch. Both teams agreed to play next Sunday at the same time. "
     "Tickets already bought will still be valid.",
     "The rained-off football final moves to next Sunday, and existing tickets remain valid."),
    ("Give the key point of this passage in one sentence.",
     "Penguins cannot fly, but they are superb swimmers. Their wings have become stiff flippers, and their bodies are shaped like torpedoes. "
     "Some species can dive deeper than 500 metres.",
     "Flightless penguins are built for swimming, with flipper wings and some diving past 500 metres."),
]  # fmt: skip

HANDWRITTEN = {
    "classification": CLASSIFICATION,
    "code": HANDWRITTEN_CODE,
    "general_qa": GENERAL_QA,
    "generation": GENERATION,
    "math": HANDWRITTEN_MATH,
    "summarization": SUMMARIZATION,
}
